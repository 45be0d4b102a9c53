/*
 * idle.c: is the volunteer's machine idle? (exec/idle.h)
 */
#include "exec/idle.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/files.h"
#include "core/log.h"
#include "core/xalloc.h"

#define CPU_SAMPLES (IDLE_CPU_WINDOW_MS / IDLE_TICK_MS + 1)

static void fmt_ms(char *out, size_t cap, uint64_t ms)
{
    if (ms < 120000)
        snprintf(out, cap, "%.0f s", (double)ms / 1000.0);
    else
        snprintf(out, cap, "%.0f min", (double)ms / 60000.0);
}

idle_verdict_t idle_decide(const idle_opts_t *o, uint64_t now_ms, uint64_t last_input_ms, int other_permille,
                           uint64_t *busy_since, char *why, size_t whylen)
{
    char ago[32], after[32];
    why[0] = '\0';
    uint64_t since = now_ms > last_input_ms ? now_ms - last_input_ms : 0;
    if (since < o->after_ms) {
        fmt_ms(ago, sizeof(ago), since);
        fmt_ms(after, sizeof(after), o->after_ms);
        snprintf(why, whylen, "the machine is in use: keyboard or mouse input %s ago (idle after %s without)", ago,
                 after);
    } else if (o->cpu_permille && other_permille >= 0 &&
               (unsigned)other_permille >= (*busy_since ? o->cpu_permille / 2 : o->cpu_permille)) {
        snprintf(why, whylen, "the machine is busy: other processes use %.1f%% of its CPUs (idle below %.1f%%)",
                 other_permille / 10.0, o->cpu_permille / 10.0);
    }
    if (!why[0]) {
        *busy_since = 0;
        return IDLE_RUN;
    }
    if (*busy_since == 0)
        *busy_since = now_ms ? now_ms : 1;
    if (now_ms - *busy_since >= o->grace_ms) {
        size_t l = strlen(why);
        fmt_ms(after, sizeof(after), o->grace_ms);
        snprintf(why + l, whylen - l, "; for over %s: tasks given back", after);
        return IDLE_GIVE_BACK;
    }
    return IDLE_SUSPEND;
}

int idle_parse_stat(const char *text, uint64_t *busy, uint64_t *total)
{
    if (!text || strncmp(text, "cpu ", 4) != 0)
        return -EBADMSG;
    /* user nice system idle iowait irq softirq steal guest guest_nice: guest time is in user already */
    uint64_t v[8] = {0};
    const char *p = text + 4;
    int n = 0;
    for (; n < 8; n++) {
        while (*p == ' ')
            p++;
        if (!isdigit((unsigned char)*p))
            break;
        char *end;
        errno = 0;
        v[n] = strtoull(p, &end, 10);
        if (errno)
            return -EBADMSG;
        p = end;
    }
    if (n < 4)
        return -EBADMSG;
    *busy = v[0] + v[1] + v[2] + v[5] + v[6]; /* v[7], steal: the hypervisor's, not this machine's users' */
    *total = *busy + v[3] + v[4];
    return 0;
}

int idle_parse_cpu(const char *text, bool stat, uint64_t *ns)
{
    if (!text)
        return -EBADMSG;
    if (stat) {
        const char *p = strstr(text, "usage_usec ");
        if (!p || (p != text && p[-1] != '\n'))
            return -EBADMSG;
        text = p + 11;
    }
    if (!isdigit((unsigned char)*text))
        return -EBADMSG;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || (*end && *end != '\n') || (stat && v > UINT64_MAX / 1000u))
        return -EBADMSG;
    *ns = stat ? (uint64_t)v * 1000u : (uint64_t)v;
    return 0;
}

int idle_other_permille(const idle_sample_t *a, const idle_sample_t *b, uint64_t ns_per_tick)
{
    if (b->total_ticks <= a->total_ticks || b->busy_ticks < a->busy_ticks || b->tasks_ns < a->tasks_ns ||
        b->self_ns < a->self_ns || !ns_per_tick)
        return -1;
    double total = (double)(b->total_ticks - a->total_ticks) * (double)ns_per_tick;
    double other = (double)(b->busy_ticks - a->busy_ticks) * (double)ns_per_tick - (double)(b->tasks_ns - a->tasks_ns) -
                   (double)(b->self_ns - a->self_ns);
    if (other < 0)
        other = 0; /* the counters tick at different times */
    double pm = other * 1000.0 / total;
    return pm > 1000 ? 1000 : (int)pm;
}

/* ---- the monitor ---- */

typedef struct input {
    uv_poll_t poll;
    idle_t *m;
    int fd;
    char *path;
} input_t;

struct idle {
    uv_loop_t *loop;
    idle_opts_t opts;
    char *input_dir, *cpu_file;
    bool cpu_stat; /* cpu_file is a v2 cpu.stat (else v1 cpuacct.usage) */
    idle_cb cb;
    void *arg;
    uv_timer_t timer;
    input_t *in[IDLE_MAX_INPUTS];
    unsigned n_in;
    uint64_t last_input_ms, busy_since, last_scan_ms;
    idle_verdict_t verdict;
    char why[256];
    idle_sample_t samples[CPU_SAMPLES];
    unsigned n_samples;
    int other_permille;
    uint64_t ns_per_tick;
    bool cpu_unknown_said, no_input_said;
    bool closing, working;
    unsigned handles; /* open uv handles: the timer and the inputs */
};

typedef struct scan {
    uv_work_t req;
    idle_t *m;
    char *known[IDLE_MAX_INPUTS]; /* already watched: not opened again */
    unsigned n_known;
    int fds[IDLE_MAX_INPUTS];
    char *paths[IDLE_MAX_INPUTS];
    unsigned n;
    int scan_errno;
    bool sample_ok;
    idle_sample_t sample;
} scan_t;

static uint64_t now_ms(void) { return uv_hrtime() / 1000000u; }

static void maybe_free(idle_t *m)
{
    if (m->closing && !m->working && m->handles == 0) {
        free(m->input_dir);
        free(m->cpu_file);
        free(m);
    }
}

/* An input's descriptor is closed here, once its handle is: uv_close unregisters the descriptor
 * from the loop's epoll (EPOLL_CTL_DEL), and a descriptor closed before that would be a number
 * the thread pool may have been given meanwhile (scan_work's opendir, a checkpoint's walk). */
static void on_handle_closed(uv_handle_t *h)
{
    idle_t *m = h->data;
    if ((void *)h != (void *)&m->timer) {
        input_t *in = (input_t *)h;
        if (in->fd >= 0)
            close(in->fd);
        free(in->path);
        free(in);
    }
    m->handles--;
    maybe_free(m);
}

static void input_drop(idle_t *m, unsigned i)
{
    input_t *in = m->in[i];
    uv_close((uv_handle_t *)&in->poll, on_handle_closed); /* which closes in->fd */
    m->in[i] = m->in[--m->n_in];
}

static void apply(idle_t *m)
{
    char why[sizeof(m->why)];
    idle_verdict_t v = idle_decide(&m->opts, now_ms(), m->last_input_ms, m->other_permille, &m->busy_since, why,
                                   sizeof(why));
    bool changed = v != m->verdict;
    snprintf(m->why, sizeof(m->why), "%s", why);
    if (!changed)
        return;
    m->verdict = v;
    m->cb(m->arg, v, m->why);
}

static void on_input(uv_poll_t *p, int status, int events)
{
    (void)events;
    input_t *in = (input_t *)p;
    idle_t *m = in->m;
    char buf[4096];
    ssize_t n;
    bool got = false, gone = status < 0;
    while (!gone && (n = read(in->fd, buf, sizeof(buf))) != 0) {
        if (n > 0) {
            got = true;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            gone = true; /* ENODEV: unplugged */
        break;
    }
    if (!gone && n == 0) { /* a FIFO whose writer closed it (a test's fake device): open it afresh */
        int fd = open(in->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0) {
            /* a new fd needs a new poll handle: close this one (and its fd, once it is closed) and
             * watch the new fd in another */
            input_t *again = xcalloc(1, sizeof(*again));
            again->m = m;
            again->fd = fd;
            again->path = in->path;
            in->path = NULL;
            unsigned at = 0;
            for (unsigned i = 0; i < m->n_in; i++)
                if (m->in[i] == in)
                    at = i;
            uv_close((uv_handle_t *)&in->poll, on_handle_closed);
            if (uv_poll_init(m->loop, &again->poll, fd) == 0) {
                m->in[at] = again;
                again->poll.data = m;
                m->handles++;
                uv_poll_start(&again->poll, UV_READABLE, on_input);
            } else { /* cannot be watched: forgotten, found again by the next scan */
                close(fd);
                free(again->path);
                free(again);
                m->in[at] = m->in[--m->n_in];
            }
        } else {
            if (fd >= 0)
                close(fd);
            gone = true;
        }
    }
    if (gone) {
        for (unsigned i = 0; i < m->n_in; i++)
            if (m->in[i] == in) {
                log_info("idle: input device %s is gone", in->path);
                input_drop(m, i);
                break;
            }
    }
    if (got) {
        m->last_input_ms = now_ms();
        apply(m); /* the owner is back: at once, not at the next tick */
    }
}

/* Thread pool: opens input devices not watched yet; samples the CPU counters. */
static void scan_work(uv_work_t *req)
{
    scan_t *s = req->data;
    idle_t *m = s->m;
    if (s->n_known != UINT32_MAX) {
        DIR *d = opendir(m->input_dir);
        struct dirent *de;
        if (!d)
            s->scan_errno = errno;
        while (d && (de = readdir(d)) != NULL && s->n_known + s->n < IDLE_MAX_INPUTS) {
            if (strncmp(de->d_name, "event", 5) != 0)
                continue;
            char *path = xasprintf("%s/%s", m->input_dir, de->d_name);
            bool known = false;
            for (unsigned i = 0; i < s->n_known && !known; i++)
                known = !strcmp(s->known[i], path);
            int fd = known ? -1 : open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
            if (fd < 0) {
                if (!known && !s->scan_errno)
                    s->scan_errno = errno;
                free(path);
                continue;
            }
            s->fds[s->n] = fd;
            s->paths[s->n++] = path;
        }
        if (d)
            closedir(d);
    }
    char *text = NULL;
    size_t len;
    char *cpu = NULL;
    struct rusage ru;
    s->sample_ok = files_read_small("/proc/stat", 1 << 20, &text, &len) == 0 &&
                   idle_parse_stat(text, &s->sample.busy_ticks, &s->sample.total_ticks) == 0 && m->cpu_file &&
                   files_read_small(m->cpu_file, 1 << 16, &cpu, &len) == 0 &&
                   idle_parse_cpu(cpu, m->cpu_stat, &s->sample.tasks_ns) == 0 && getrusage(RUSAGE_SELF, &ru) == 0;
    free(text);
    free(cpu);
    if (s->sample_ok)
        s->sample.self_ns = ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
                            ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

static void scan_done(uv_work_t *req, int status)
{
    (void)status;
    scan_t *s = req->data;
    idle_t *m = s->m;
    m->working = false;
    for (unsigned i = 0; i < s->n_known && s->n_known != UINT32_MAX; i++)
        free(s->known[i]);
    if (m->closing) {
        for (unsigned i = 0; i < s->n; i++) {
            close(s->fds[i]);
            free(s->paths[i]);
        }
        free(s);
        maybe_free(m);
        return;
    }
    for (unsigned i = 0; i < s->n; i++) {
        input_t *in = xcalloc(1, sizeof(*in));
        in->m = m;
        in->fd = s->fds[i];
        in->path = s->paths[i];
        int prc = uv_poll_init(m->loop, &in->poll, in->fd);
        if (prc) { /* not pollable (a regular file named event*): not an input device */
            log_warn("idle: %s cannot be watched (%s): skipped", in->path, uv_strerror(prc));
            close(in->fd);
            free(in->path);
            free(in);
            continue;
        }
        in->poll.data = m;
        m->handles++;
        m->in[m->n_in++] = in;
        uv_poll_start(&in->poll, UV_READABLE, on_input);
        log_info("idle: watching input device %s", in->path);
    }
    if (m->n_in == 0 && !m->no_input_said && s->n_known != UINT32_MAX) {
        m->no_input_said = true;
        log_warn("idle: no input device to watch in %s (%s): idle is judged by the CPU load alone", m->input_dir,
                 s->scan_errno ? strerror(s->scan_errno) : "none there");
    }
    if (s->sample_ok) {
        s->sample.at_ms = now_ms();
        if (m->n_samples == CPU_SAMPLES) {
            memmove(&m->samples[0], &m->samples[1], (CPU_SAMPLES - 1) * sizeof(m->samples[0]));
            m->n_samples--;
        }
        m->samples[m->n_samples++] = s->sample;
        m->other_permille = m->n_samples >= 2 ? idle_other_permille(&m->samples[0], &m->samples[m->n_samples - 1],
                                                                    m->ns_per_tick)
                                              : -1;
    } else {
        m->other_permille = -1; /* no stale figure holds the verdict */
        if (m->opts.cpu_permille && !m->cpu_unknown_said) {
            m->cpu_unknown_said = true;
            log_warn("idle: the CPU use of other processes cannot be told here (/proc/stat, or the tasks' "
                     "cpuacct cgroup): idle is judged by input alone");
        }
    }
    free(s);
    apply(m);
}

static void on_tick(uv_timer_t *t)
{
    idle_t *m = t->data;
    if (m->working || m->closing)
        return;
    scan_t *s = xcalloc(1, sizeof(*s));
    s->req.data = s;
    s->m = m;
    uint64_t now = now_ms();
    if (m->last_scan_ms == 0 || now - m->last_scan_ms >= IDLE_RESCAN_MS) {
        m->last_scan_ms = now;
        for (unsigned i = 0; i < m->n_in; i++)
            s->known[s->n_known++] = xstrdup(m->in[i]->path);
    } else {
        s->n_known = UINT32_MAX; /* no scan this time: only the CPU sample */
    }
    m->working = true;
    if (uv_queue_work(m->loop, &s->req, scan_work, scan_done) != 0) {
        m->working = false;
        for (unsigned i = 0; i < s->n_known && s->n_known != UINT32_MAX; i++)
            free(s->known[i]);
        free(s);
    }
}

int idle_new(uv_loop_t *loop, const idle_opts_t *opts, idle_cb cb, void *arg, idle_t **out)
{
    if (!loop || !opts || !cb || !out)
        return -EINVAL;
    idle_t *m = xcalloc(1, sizeof(*m));
    m->loop = loop;
    m->opts = *opts;
    m->input_dir = xstrdup(opts->input_dir ? opts->input_dir : "/dev/input");
    m->opts.input_dir = m->input_dir;
    if (opts->cpu_file) {
        m->cpu_file = xstrdup(opts->cpu_file);
        size_t l = strlen(m->cpu_file);
        m->cpu_stat = l >= 8 && !strcmp(m->cpu_file + l - 8, "cpu.stat");
    }
    m->opts.cpu_file = m->cpu_file;
    m->cb = cb;
    m->arg = arg;
    m->other_permille = -1;
    long hz = sysconf(_SC_CLK_TCK);
    m->ns_per_tick = hz > 0 ? 1000000000u / (uint64_t)hz : 10000000u;
    m->last_input_ms = now_ms(); /* someone just started it: count that as use */
    m->verdict = idle_decide(&m->opts, m->last_input_ms, m->last_input_ms, -1, &m->busy_since, m->why,
                             sizeof(m->why));
    uv_timer_init(loop, &m->timer);
    m->timer.data = m;
    m->handles = 1;
    uv_timer_start(&m->timer, on_tick, 0, IDLE_TICK_MS);
    *out = m;
    return 0;
}

idle_verdict_t idle_verdict(const idle_t *m, const char **why)
{
    if (why)
        *why = m->why;
    return m->verdict;
}

unsigned idle_inputs(const idle_t *m) { return m->n_in; }

void idle_close(idle_t *m)
{
    if (!m || m->closing)
        return;
    m->closing = true;
    uv_timer_stop(&m->timer);
    uv_close((uv_handle_t *)&m->timer, on_handle_closed);
    while (m->n_in)
        input_drop(m, m->n_in - 1);
    maybe_free(m);
}
