/*
 * log.c: one line per event, to stderr and optionally to a file.
 *
 * Each line is formatted completely in a stack buffer and then written with a single write(2) per
 * destination. stderr is unbuffered and the log file is opened O_APPEND, so lines logged by
 * different threads (uv_queue_work jobs) never interleave, without a lock. Nothing here allocates,
 * so logging works on the out-of-memory path too.
 *
 * The only state is the level and the log file's descriptor. Both are process-wide by nature (there
 * is one stderr) and set once at start-up from argv; they are atomics so that a worker thread that
 * logs while main sets them sees either the old or the new value, never a torn one.
 */
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Longer messages are cut and end in "..." (a log line is for people; data goes elsewhere). */
#define LOG_MAX_LINE 8192

static struct {
    _Atomic int level;
    _Atomic int fd; /* log file, or -1 */
} log_state = {LOG_LEVEL_INFO, -1};

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void log_set_level(enum log_level level) { atomic_store(&log_state.level, (int)level); }

int log_parse_level(const char *name, enum log_level *out)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if (!name)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(name, names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

/*
 * The previous descriptor is closed here, so a thread logging at exactly this moment could write
 * into a closed descriptor; call this at start-up and shutdown only, as preon.c does.
 */
int log_set_file(const char *path)
{
    int fd = -1;
    if (path) {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return -errno;
    }
    int old = atomic_exchange(&log_state.fd, fd);
    if (old >= 0)
        close(old);
    return 0;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = write(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return; /* nowhere left to report a logging failure */
        p += r;
        n -= (size_t)r;
    }
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if ((int)level > atomic_load(&log_state.level) || (int)level < 0 || (int)level > LOG_LEVEL_DEBUG)
        return;
    int saved_errno = errno; /* callers log and then use errno; keep it intact */

    char line[LOG_MAX_LINE];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %s ", ts.tv_nsec / 1000000L,
                          level_names[level]);

    size_t head = n;
    size_t room = sizeof(line) - n - 1; /* keep one byte for the newline */
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(line + n, room + 1, fmt, ap);
    va_end(ap);
    if (r < 0)
        r = 0;
    if ((size_t)r > room) {
        n += room;
        memcpy(line + n - 3, "...", 3);
    } else {
        n += (size_t)r;
    }
    /* A message may quote untrusted text (file names, peer replies): a newline in it must not be
     * able to forge a second log line. */
    for (size_t i = head; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    while (n > head && line[n - 1] == ' ')
        n--;
    line[n++] = '\n';

    write_all(STDERR_FILENO, line, n);
    int fd = atomic_load(&log_state.fd);
    if (fd >= 0)
        write_all(fd, line, n);
    errno = saved_errno;
}

void why_printf(char *why, size_t whylen, const char *fmt, ...)
{
    if (!why || whylen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}
