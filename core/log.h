/**
 * @file log.h  Process-wide logging to stderr (and optionally a file).
 *
 * Every line is "2026-11-21T19:42:19.123Z LEVEL message". The level is the only global state:
 * it is set once from argv. Messages never contain a trailing newline; log_msg adds one.
 */
#ifndef PREON_CORE_LOG_H
#define PREON_CORE_LOG_H
#include <stddef.h>

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/** Sets the most verbose level printed (default LOG_LEVEL_INFO). */
void log_set_level(enum log_level level);
/** Parses "error", "warn", "info", "debug"; returns 0 or -EINVAL. */
int log_parse_level(const char *name, enum log_level *out);
/** Also appends every line to the file at path (opened O_APPEND); NULL stops. 0 or -errno. */
int log_set_file(const char *path);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * Fills a caller's `why` buffer (a reason for the user, e.g. "line 3: unknown key 'taks'") like
 * snprintf; does nothing when why is NULL or whylen is 0. For parsers of untrusted input.
 */
void why_printf(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
