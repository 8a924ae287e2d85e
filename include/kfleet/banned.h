/* banned.h: libc calls that kfleet code may not use.
 *
 * Included last by kfleet/base.h. Each name below becomes a compile error
 * that says what to use instead: unbounded copies and formats go through
 * kf_strbuf, number parsing through kf_parse_*(), tokenizing by hand.
 */
#ifndef KF_BANNED_H
#define KF_BANNED_H

#define KF_BANNED(func) sorry_##func##_is_banned_in_kfleet

#undef strcpy
#define strcpy(x, y) KF_BANNED(strcpy)
#undef strcat
#define strcat(x, y) KF_BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) KF_BANNED(strncpy)
#undef strncat
#define strncat(x, y, n) KF_BANNED(strncat)
#undef sprintf
#define sprintf(...) KF_BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) KF_BANNED(vsprintf)
#undef strtok
#define strtok(x, y) KF_BANNED(strtok)
#undef atoi
#define atoi(x) KF_BANNED(atoi)
#undef atol
#define atol(x) KF_BANNED(atol)
#undef atoll
#define atoll(x) KF_BANNED(atoll)
#undef gets
#define gets(x) KF_BANNED(gets)
#undef gmtime
#define gmtime(x) KF_BANNED(gmtime)
#undef localtime
#define localtime(x) KF_BANNED(localtime)
#undef asctime
#define asctime(x) KF_BANNED(asctime)
#undef ctime
#define ctime(x) KF_BANNED(ctime)

#endif
