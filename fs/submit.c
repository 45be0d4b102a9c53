/*
 * submit.c: `preon submit [--mount DIR] [--name NAME] [--wait] SRC`: publishes the directory SRC as
 * a job of the peer mounted at DIR, the way a careful script would with cp and mv (docs/usage.md,
 * "Publishing a job"): the tree is copied into jobs/.NAME.<random> (a dot-name is never published)
 * and renamed to jobs/NAME, which publishes it at once, so a half copy is never published; a copy
 * that fails or is interrupted is removed. Then it prints the job's id (status/NAME's id: line) and,
 * with --wait, follows the job until it is over: a progress bar redrawn in place when stderr is a
 * terminal, a plain line per change otherwise (progress.c writes both), and the end read from
 * wait/NAME (a read that blocks until the job is over, in libuv's thread pool, while a timer reads
 * status/NAME a few times a second for the progress). Exit 0 if every task succeeded, 1 if not (or
 * the copy failed, or the job was rejected), 2 on a usage error.
 *
 * The copy reads SRC with O_NOFOLLOW | O_NONBLOCK, so nothing in it can make it wait (a FIFO is
 * refused, not opened for a writer that never comes); symlinks and special files are refused with
 * their path, as jobs hold regular files and directories only.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/files.h"
#include "core/jobdesc.h"
#include "core/manifest.h"
#include "core/xalloc.h"
#include "fs/internal.h"

#define SUBMIT_MAX_DEPTH 64        /* directories in directories: two fds each while copying */
#define SUBMIT_COPY_BUF (256 * 1024)
#define SUBMIT_BAR_MS 250          /* a terminal's bar is redrawn this often */
#define SUBMIT_PLAIN_MS 500        /* a log's line is written when something changed, looked at this often */
#define SUBMIT_ID_POLL_MAX_MS 200  /* waiting for the id: the status file is read at most this far apart */

static const char usage_submit[] =
    "usage: preon submit [--mount DIR] [--name NAME] [--wait] SRC\n"
    "  publishes the directory SRC as the job NAME (default: SRC's own name) of the peer mounted at DIR:\n"
    "  copied into DIR/jobs/.NAME.<random>, then renamed to DIR/jobs/NAME (never published half-copied),\n"
    "  and prints its id. A job of that name in jobs/ already: an error (choose another --name).\n"
    "  --mount DIR   the peer's mount (default $PREON_MOUNT)\n"
    "  --name NAME   the job's name in jobs/\n"
    "  --wait        then wait until it is over: a progress bar on a terminal (stderr), a line per change\n"
    "                otherwise; exit 0 if every task succeeded, 1 if not, with the reason\n";

static volatile sig_atomic_t stop_signal; /* SIGINT, SIGTERM or SIGHUP during the copy or the wait for the id */

static void on_stop_signal(int sig) { stop_signal = sig; }

/* The signals that stop the copy (and remove it) instead of killing the process with it half-done. */
static const int stop_sigs[] = {SIGINT, SIGTERM, SIGHUP};
#define N_STOP_SIGS (sizeof(stop_sigs) / sizeof(stop_sigs[0]))

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ---- the copy ---- */

typedef struct copy {
    const char *src;  /* SRC as given, for messages */
    char *buf;        /* SUBMIT_COPY_BUF bytes */
    char why[PATH_MAX + 160];
    unsigned long files;
    dev_t jobs_dev;   /* the mount's jobs/, which the copy must not descend into (it is being written) */
    ino_t jobs_ino;
} copy_t;

static int copy_fail(copy_t *c, const char *rel, const char *what, int err)
{
    snprintf(c->why, sizeof(c->why), "%s/%s: %s%s%s", c->src, rel, what, err ? ": " : "", err ? strerror(err) : "");
    return err ? -err : -EINVAL;
}

/* Copies the regular file name of sfd (rel: its path under SRC) into dfd. */
static int copy_file(copy_t *c, int sfd, int dfd, const char *name, const char *rel, mode_t mode)
{
    int in = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), out = -1, rc = 0;
    struct stat st;
    if (in < 0)
        return copy_fail(c, rel, "cannot open it", errno);
    if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) { /* it changed since it was looked at */
        close(in);
        return copy_fail(c, rel, "not a regular file any more", 0);
    }
    out = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 0777);
    if (out < 0) {
        rc = copy_fail(c, rel, "cannot create it in the mount", errno);
        goto out;
    }
    for (;;) {
        if (stop_signal) {
            rc = copy_fail(c, rel, "interrupted", EINTR);
            goto out;
        }
        ssize_t n = read(in, c->buf, SUBMIT_COPY_BUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = copy_fail(c, rel, "cannot read it", errno);
            goto out;
        }
        if (n == 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, c->buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR && !stop_signal)
                continue;
            if (w <= 0) {
                rc = copy_fail(c, rel, "cannot write it into the mount", w < 0 ? errno : EIO);
                goto out;
            }
            off += w;
        }
    }
    c->files++;
out:
    if (out >= 0 && close(out) != 0 && !rc)
        rc = copy_fail(c, rel, "cannot write it into the mount", errno);
    close(in);
    return rc;
}

/* Copies what the directory sfd holds into the directory dfd (rel: sfd's path under SRC, "" for SRC). */
static int copy_dir(copy_t *c, int sfd, int dfd, const char *rel, int depth)
{
    int dup_fd = dup(sfd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (!d) {
        if (dup_fd >= 0)
            close(dup_fd);
        return copy_fail(c, rel[0] ? rel : ".", "cannot read the directory", errno);
    }
    int rc = 0;
    struct dirent *e;
    while (!rc && (errno = 0, e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char *sub = rel[0] ? xasprintf("%s/%s", rel, e->d_name) : xstrdup(e->d_name);
        struct stat st;
        if (stop_signal)
            rc = copy_fail(c, sub, "interrupted", EINTR);
        else if (fstatat(sfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            rc = copy_fail(c, sub, "cannot look at it", errno);
        else if (S_ISREG(st.st_mode))
            rc = copy_file(c, sfd, dfd, e->d_name, sub, st.st_mode);
        else if (S_ISLNK(st.st_mode))
            rc = copy_fail(c, sub, "a symlink: jobs hold regular files and directories only (copy what it points to)",
                           0);
        else if (!S_ISDIR(st.st_mode))
            rc = copy_fail(c, sub, "not a regular file or a directory: jobs hold only those", 0);
        else if (depth >= SUBMIT_MAX_DEPTH)
            rc = copy_fail(c, sub, "directories nested too deep", 0);
        else if (st.st_dev == c->jobs_dev && st.st_ino == c->jobs_ino)
            rc = copy_fail(c, sub, "the mount's jobs/ directory (the copy would copy itself): submit a directory "
                           "that does not hold the mount", 0);
        else if (mkdirat(dfd, e->d_name, (st.st_mode & 0777) | 0700) != 0)
            rc = copy_fail(c, sub, "cannot create it in the mount", errno);
        else {
            int s2 = openat(sfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            int d2 = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (s2 < 0 || d2 < 0)
                rc = copy_fail(c, sub, s2 < 0 ? "cannot open the directory" : "cannot open its copy in the mount",
                               errno);
            else
                rc = copy_dir(c, s2, d2, sub, depth + 1);
            if (s2 >= 0)
                close(s2);
            if (d2 >= 0)
                close(d2);
        }
        free(sub);
    }
    if (!rc && errno)
        rc = copy_fail(c, rel[0] ? rel : ".", "cannot read the directory", errno);
    closedir(d);
    return rc;
}

/* ---- following the job ---- */

typedef struct follow {
    uv_loop_t loop;
    uv_timer_t timer;
    uv_signal_t sig[2];
    uv_work_t work;
    const char *name;       /* printable */
    char *status_path, *wait_path;
    char *final;            /* wait/NAME's text, once the job is over */
    int final_rc;
    bool tty;
    uint64_t t0;
    char last[512];         /* plain: the last line's counts, to write only what changed */
    char last_why[1024];
    bool drawn;             /* tty: a bar is on the line */
} follow_t;

static unsigned term_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return 80;
}

static void draw(follow_t *f)
{
    char *text = NULL;
    if (fs__client_read(f->status_path, &text) != 0) {
        free(text);
        return; /* the next tick tries again; the end comes from wait/ */
    }
    fs_jstat_t st;
    fs__jstat_parse(text, &st);
    free(text);
    char line[2048];
    uint64_t el = now_ms() - f->t0;
    if (f->tty) {
        fs__progress_line(f->name, &st, el, term_width() - 1, line, sizeof(line));
        fprintf(stderr, "\r\033[K%s", line); /* one line, redrawn in place */
        f->drawn = true;
    } else {
        char key[512]; /* what counts as a change: the state and the counts, not the clock */
        snprintf(key, sizeof(key), "%s %u %u %u %u %u", st.state, st.waiting, st.running, st.succeeded, st.failed,
                 st.cancelled);
        if (strcmp(key, f->last) != 0) {
            snprintf(f->last, sizeof(f->last), "%s", key);
            fs__progress_line(f->name, &st, el, 0, line, sizeof(line));
            fprintf(stderr, "%s\n", line);
        }
        const char *why = st.running == 0 ? st.why_waiting : ""; /* as the bar: when nothing runs */
        if (strcmp(why, f->last_why) != 0) {
            snprintf(f->last_why, sizeof(f->last_why), "%s", why);
            if (why[0])
                fprintf(stderr, "%s: why-waiting: %s\n", f->name, why);
        }
    }
    fflush(stderr);
}

static void on_tick(uv_timer_t *t) { draw(t->data); }

/* Thread pool: blocks on wait/NAME until the job is over. */
static void wait_work(uv_work_t *w)
{
    follow_t *f = w->data;
    f->final_rc = fs__client_read(f->wait_path, &f->final);
}

static void wait_done(uv_work_t *w, int status)
{
    follow_t *f = w->data;
    (void)status;
    uv_timer_stop(&f->timer);
    uv_close((uv_handle_t *)&f->timer, NULL);
    for (int i = 0; i < 2; i++)
        uv_close((uv_handle_t *)&f->sig[i], NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
    follow_t *f = s->data;
    fprintf(stderr, "%spreon submit: stopped waiting; the job goes on (preon wait %s)\n", f->drawn ? "\n" : "",
            f->name);
    fflush(stderr);
    fflush(stdout);
    /* Not exit(): libuv joins its thread-pool threads at exit, and one is blocked in the read of
     * wait/NAME until the job is over. */
    _exit(128 + signum);
}

/* Follows the job until it is over; its exit status. */
static int follow(const char *mnt, const char *name, const char *shown)
{
    follow_t f = {.name = shown, .tty = isatty(STDERR_FILENO) == 1, .t0 = now_ms()};
    f.status_path = xasprintf("%s/status/%s", mnt, name);
    f.wait_path = xasprintf("%s/wait/%s", mnt, name);
    int err = uv_loop_init(&f.loop);
    if (err) {
        fprintf(stderr, "preon submit: %s is published but cannot be followed (%s): preon wait %s\n", shown,
                uv_strerror(err), shown);
        free(f.status_path);
        free(f.wait_path);
        return 1;
    }
    uv_timer_init(&f.loop, &f.timer); /* these fail only for bad arguments */
    f.timer.data = &f;
    int sigs[2] = {SIGINT, SIGTERM};
    for (int i = 0; i < 2; i++) {
        uv_signal_init(&f.loop, &f.sig[i]);
        f.sig[i].data = &f;
        uv_signal_start(&f.sig[i], on_signal, sigs[i]);
    }
    f.work.data = &f;
    err = uv_queue_work(&f.loop, &f.work, wait_work, wait_done);
    if (err) {
        f.final_rc = err;
        wait_done(&f.work, err); /* closes the handles: the loop ends at once */
    } else {
        draw(&f);
        uint64_t every = f.tty ? SUBMIT_BAR_MS : SUBMIT_PLAIN_MS;
        uv_timer_start(&f.timer, on_tick, every, every);
    }
    uv_run(&f.loop, UV_RUN_DEFAULT);
    uv_loop_close(&f.loop);
    if (f.drawn)
        fputs("\r\033[K", stderr);
    int rc = 1;
    if (f.final_rc) {
        if (f.final_rc == -ENOTCONN || f.final_rc == -ECONNABORTED) /* the peer died, or was unmounted */
            fprintf(stderr, "preon submit: %s: cannot wait for it: the peer's mount is gone (did the peer stop?); "
                    "its jobs go on when it is started again: preon wait %s\n", shown, shown);
        else
            fprintf(stderr, "preon submit: %s: cannot wait for it: %s (preon wait %s, preon status %s)\n", shown,
                    strerror(-f.final_rc), shown, shown);
    } else {
        fs_jstat_t st;
        fs__jstat_parse(f.final, &st);
        char el[32], sz[32];
        fs__duration(now_ms() - f.t0, el, sizeof(el));
        jobdesc_format_size(st.bytes, sz, sizeof(sz));
        rc = strcmp(st.state, "done") == 0 ? 0 : 1;
        if (!rc)
            fprintf(stderr, "%s: done: %u of %u tasks succeeded in %s, %s moved\n", shown, st.succeeded, st.tasks, el,
                    sz);
        else if (!strcmp(st.state, "failed"))
            fprintf(stderr, "%s: failed: %u of %u tasks failed%s%s (preon status %s: each failed task)\n", shown,
                    st.failed, st.tasks, st.reason[0] ? ": " : "", st.reason, shown);
        else
            fprintf(stderr, "%s: %s%s%s\n", shown, st.state, st.reason[0] ? ": " : "", st.reason);
    }
    free(f.final);
    free(f.status_path);
    free(f.wait_path);
    return rc;
}

/* ---- the command ---- */

/* A job name as jobs/ takes it: 1..MANIFEST_MAX_NAME bytes, no '/', no leading '.', no control byte. */
static const char *bad_name(const char *n)
{
    if (!n[0])
        return "it is empty";
    if (n[0] == '.')
        return "it starts with a dot (such names are never published)";
    if (strlen(n) > MANIFEST_MAX_NAME)
        return "it is longer than 200 bytes";
    for (const char *p = n; *p; p++) {
        if (*p == '/')
            return "it has a '/'";
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return "it has a control character";
    }
    return NULL;
}

/* Waits for the published job's id (status/NAME: id:), or its rejection. 0 with st filled, or 1. */
static int await_id(const char *mnt, const char *name, const char *shown, fs_jstat_t *st)
{
    char *path = xasprintf("%s/status/%s", mnt, name);
    unsigned delay = 5;
    int rc = 1;
    for (;;) {
        char *text = NULL;
        int r = fs__client_read(path, &text);
        if (!r)
            fs__jstat_parse(text, st);
        free(text);
        if (r) {
            fprintf(stderr, "preon submit: %s: cannot read its status: %s\n", shown, strerror(-r));
            break;
        }
        if (st->id[0]) {
            rc = 0;
            break;
        }
        if (!strcmp(st->state, "rejected")) {
            fprintf(stderr, "preon submit: %s was rejected: %s\n", shown, st->reason[0] ? st->reason : "(no reason)");
            char *job = xasprintf("%s/jobs/%s", mnt, name);
            if (files_rm_rf(job) == 0) /* not published: nothing else has it; a resubmission needs the name */
                fprintf(stderr, "preon submit: removed %s from jobs/: fix it and submit again\n", shown);
            free(job);
            break;
        }
        if (stop_signal) {
            fprintf(stderr, "preon submit: %s: interrupted while it was being published (it will be: preon status "
                    "%s)\n", shown, shown);
            rc = 128 + stop_signal;
            break;
        }
        sleep_ms(delay); /* hashing in the peer's thread pool: no event to wait for */
        delay = delay * 2 > SUBMIT_ID_POLL_MAX_MS ? SUBMIT_ID_POLL_MAX_MS : delay * 2;
    }
    free(path);
    return rc;
}

int fs_client_submit(int argc, char **argv)
{
    static const struct option opts[] = {{"mount", required_argument, NULL, 'm'},
                                         {"name", required_argument, NULL, 'n'},
                                         {"wait", no_argument, NULL, 'w'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    const char *mnt = getenv("PREON_MOUNT"), *name = NULL;
    bool wait = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': mnt = optarg; break;
        case 'n': name = optarg; break;
        case 'w': wait = true; break;
        case 'h': fputs(usage_submit, stdout); return 0;
        default: fputs(usage_submit, stderr); return 2;
        }
    }
    if (optind != argc - 1 || !mnt || !*mnt) {
        fputs(usage_submit, stderr);
        if (!mnt || !*mnt)
            fputs("preon submit: no mount: pass --mount DIR or set PREON_MOUNT\n", stderr);
        return 2;
    }
    const char *src = argv[optind];
    char *base = NULL;
    if (!name) { /* SRC's own name, trailing slashes aside */
        base = xstrdup(src);
        size_t n = strlen(base);
        while (n > 1 && base[n - 1] == '/')
            base[--n] = '\0';
        char *slash = strrchr(base, '/');
        name = slash ? slash + 1 : base;
        if (!strcmp(name, ".") || !strcmp(name, "..")) {
            fprintf(stderr, "preon submit: %s has no name to give the job: pass --name NAME\n", src);
            free(base);
            return 2;
        }
    }
    const char *why = bad_name(name);
    if (why) {
        char *bad = fs__printable(name, &(size_t){0}); /* the user's own text, but no escape reaches the terminal */
        fprintf(stderr, "preon submit: '%s' cannot be a job's name: %s (pass --name NAME)\n", bad, why);
        free(bad);
        free(base);
        return 2;
    }
    size_t cols;
    char *shown = fs__printable(name, &cols);
    char *jobs = xasprintf("%s/jobs", mnt), *final = xasprintf("%s/jobs/%s", mnt, name), *staged = NULL;
    char *buf = NULL;
    int rc = 1, sfd = -1, dfd = -1;
    struct sigaction old_sa[N_STOP_SIGS];
    bool handlers = false; /* old_sa holds what to put back */
    struct stat st, pst;
    char *peer = xasprintf("%s/peer", mnt);
    int serr = stat(jobs, &st) != 0 ? errno : !S_ISDIR(st.st_mode) ? ENOTDIR : 0;
    if (!serr && (stat(peer, &pst) != 0 || !S_ISREG(pst.st_mode)))
        serr = ENOENT; /* a jobs/ directory alone is not a mount: the copy would be published nowhere */
    free(peer);
    if (serr) {
        fprintf(stderr, "preon submit: %s is not a peer's mount (no jobs/ and peer in it: %s): pass the directory "
                "preon mount mounted (--mount DIR or PREON_MOUNT)\n", mnt, strerror(serr));
        rc = 2;
        goto out;
    }
    copy_t cp = {.src = src, .jobs_dev = st.st_dev, .jobs_ino = st.st_ino};
    sfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sfd < 0) {
        fprintf(stderr, "preon submit: %s: %s\n", src, errno == ENOTDIR ? "not a directory" : strerror(errno));
        goto out;
    }
    if (fstat(sfd, &st) == 0 && st.st_dev == cp.jobs_dev && st.st_ino == cp.jobs_ino) {
        fprintf(stderr, "preon submit: %s is the mount's jobs/ directory: submit one of the directories in it\n", src);
        rc = 2;
        goto out;
    }
    if (lstat(final, &st) == 0) {
        fprintf(stderr, "preon submit: a job named %s is in %s already: choose another name (--name NAME), or "
                "remove it first (rm -r %s)\n", shown, jobs, final);
        goto out;
    }
    uint32_t rnd = 0;
    if (getentropy(&rnd, sizeof(rnd)) != 0)
        rnd = (uint32_t)getpid() ^ (uint32_t)now_ms();
    /* jobs/ takes names of MANIFEST_MAX_NAME bytes at most, dot-names too: NAME is cut (at a
     * character) to leave room for the dot and ".<8 hex>" */
    size_t keep = strlen(name);
    if (keep > MANIFEST_MAX_NAME - 10) {
        keep = MANIFEST_MAX_NAME - 10;
        while (keep > 0 && ((unsigned char)name[keep] & 0xc0) == 0x80)
            keep--;
    }
    staged = xasprintf("%s/.%.*s.%08x", jobs, (int)keep, name, rnd);
    /* Before the staged directory exists: from then on a signal stops the copy, which is removed
     * (no SA_RESTART: a write under way returns). */
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < N_STOP_SIGS; i++)
        sigaction(stop_sigs[i], &sa, &old_sa[i]);
    handlers = true;
    if (mkdir(staged, 0755) != 0) {
        fprintf(stderr, "preon submit: cannot create %s: %s\n", staged, strerror(errno));
        free(staged);
        staged = NULL;
        goto out;
    }
    dfd = open(staged, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cp.buf = buf = xmalloc(SUBMIT_COPY_BUF);
    int crc = dfd < 0 ? copy_fail(&cp, ".", "cannot open the staged copy", errno) : copy_dir(&cp, sfd, dfd, "", 0);
    if (dfd >= 0)
        close(dfd); /* nothing of the copy is open when it is renamed */
    dfd = -1;
    if (!crc && stop_signal) /* after the last file: still not published */
        crc = copy_fail(&cp, ".", "interrupted", EINTR);
    if (!crc && rename(staged, final) != 0) {
        int err = errno;
        if (err == EEXIST || err == ENOTEMPTY)
            snprintf(cp.why, sizeof(cp.why), "a job named %s came into %s meanwhile: choose another name (--name NAME)",
                     shown, jobs);
        else
            snprintf(cp.why, sizeof(cp.why), "cannot rename %s to %s: %s", staged, final, strerror(err));
        crc = -err;
    }
    if (crc) {
        fprintf(stderr, "preon submit: %s\n", cp.why);
        int rm = files_rm_rf(staged); /* a dot-name: never published, whatever it holds */
        if (rm)
            fprintf(stderr, "preon submit: could not remove the partial copy %s: %s\n", staged, strerror(-rm));
        else
            fprintf(stderr, "preon submit: nothing was published\n");
        rc = stop_signal ? 128 + stop_signal : 1;
        goto out;
    }
    fs_jstat_t js;
    rc = await_id(mnt, name, shown, &js);
    for (size_t i = 0; i < N_STOP_SIGS; i++)
        sigaction(stop_sigs[i], &old_sa[i], NULL);
    handlers = false;
    if (rc)
        goto out;
    printf("%s\n", js.id);
    fflush(stdout);
    if (wait)
        rc = follow(mnt, name, shown);
out:
    for (size_t i = 0; handlers && i < N_STOP_SIGS; i++)
        sigaction(stop_sigs[i], &old_sa[i], NULL);
    if (sfd >= 0)
        close(sfd);
    if (dfd >= 0)
        close(dfd);
    free(buf);
    free(staged);
    free(final);
    free(jobs);
    free(shown);
    free(base);
    return rc;
}
