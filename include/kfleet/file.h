/* file.h: files and folders the way kfleet writes them: mkdir -p, a file
 * replaced atomically (write a temporary file next to it, then rename), and
 * rm -r of a tree. Implemented in src/base/base-file.c; the one copy of each
 * for every layer (the runner's state, the monitoring and HAProxy files,
 * guest PKI, the CLI's config).
 *
 * Library code: these return negative errno and do not log.
 */
#ifndef KF_FILE_H
#define KF_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct kf_strbuf;

/* Creates path and every missing parent, new folders with mode (an existing
 * one keeps its mode). Returns 0 when path is a folder afterwards, else
 * negative errno (-ENOTDIR when it exists and is not a folder). */
int kf_mkdir_p(const char *path, mode_t mode);

/* Replaces path with data (len bytes) at once: readers see the old file or
 * the new one, never a part. The content goes to a hidden temporary file
 * ".<name>.tmp.XXXXXX" next to path, created 0600 (so a key is never
 * readable by others, not even briefly), then set to mode and renamed over
 * path. durable: the file is fsync'ed before the rename and its folder
 * after, so the new content survives a power loss. On failure the temporary
 * file is removed, path is untouched, and the reason goes to err (optional).
 * Returns 0 or negative errno. */
int kf_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, bool durable,
                         struct kf_strbuf *err);

/* rm -r: removes path and, if it is a folder, everything below it, without
 * following symbolic links. A path that does not exist is not an error.
 * Returns 0, or negative errno of the first entry that could not be removed
 * (the walk stops there). */
int kf_remove_tree(const char *path);

/* Reads the whole file at path into a new NUL-terminated buffer (*ret, the
 * caller frees; *ret_len its length, optional). A file longer than cap
 * bytes is -E2BIG. Returns 0 or negative errno; *ret untouched on failure. */
int kf_read_file(const char *path, size_t cap, char **ret, size_t *ret_len);

/* The SHA-256 of the file at path, read in pieces (a snapshot of gigabytes
 * is never held in memory), as "sha256:<64 lowercase hex digits>" into out;
 * its size in bytes into *ret_size (optional). The one copy behind a
 * Backup's checksum, written by the agent and checked before a restore.
 * Returns 0 or negative errno; out is untouched on failure. */
#define KF_SHA256_TEXT_SIZE 72 /* "sha256:" + 64 + NUL */
int kf_file_sha256(const char *path, char out[KF_SHA256_TEXT_SIZE], int64_t *ret_size);

#endif
