# obs-sink.py: the HTTP sink the receiver tests deliver to. Standard
# library only. Usage: obs-sink.py PORT_FILE LOG_FILE DINGTALK_SECRET
#
# Listens on 127.0.0.1 on a free port (written to PORT_FILE), appends one
# JSON line per request to LOG_FILE, and answers by path:
#   /robot/send   DingTalk: checks the timestamp/sign query against the
#                 secret with Python's own hmac, {"errcode":0} if it holds,
#                 {"errcode":310000} if not
#   /busy         DingTalk's "sending too fast": {"errcode":130101}
#   /fail         HTTP 500
#   /reject       HTTP 400
#   anything else HTTP 200 "ok"
import base64, hashlib, hmac, http.server, json, sys, urllib.parse

port_file, log_file, secret = sys.argv[1], sys.argv[2], sys.argv[3]


class Sink(http.server.BaseHTTPRequestHandler):
    def handle_any(self):
        n = int(self.headers.get('Content-Length', 0))
        body = self.rfile.read(n).decode('utf-8', 'replace')
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        with open(log_file, 'a') as log:
            log.write(json.dumps({'method': self.command, 'path': url.path, 'query': query,
                                  'headers': dict(self.headers), 'body': body}) + '\n')
        status, reply = 200, b'ok'
        if url.path == '/robot/send':
            ts = query.get('timestamp', [''])[0]
            want = base64.b64encode(hmac.new(secret.encode(), (ts + '\n' + secret).encode(),
                                             hashlib.sha256).digest()).decode()
            ok = query.get('sign', [''])[0] == want
            reply = json.dumps({'errcode': 0 if ok else 310000,
                                'errmsg': 'ok' if ok else 'sign not match'}).encode()
        elif url.path == '/busy':
            reply = b'{"errcode":130101,"errmsg":"send too fast"}'
        elif url.path == '/fail':
            status = 500
        elif url.path == '/reject':
            status = 400
        self.send_response(status)
        self.send_header('Content-Length', str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_POST = do_PUT = do_GET = handle_any

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(('127.0.0.1', 0), Sink)
with open(port_file + '.tmp', 'w') as f:
    f.write(str(server.server_address[1]))
import os
os.rename(port_file + '.tmp', port_file)
server.serve_forever()
