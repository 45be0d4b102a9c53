/*
 * test_core.c: unit tests for core/hash.c, core/xalloc.c, core/log.c and core/sdnotify.c.
 *
 * Hashes are checked against the FIPS 180-2 vectors; log lines are read back from a real log file
 * (stderr is pointed at /dev/null meanwhile) and parsed, including lines written concurrently by
 * several threads, which must come out whole.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/files.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/sdnotify.h"
#include "core/xalloc.h"

#define ABC_SHA256 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define LONG_SHA256 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
#define LONG_MSG "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"

/* ---- hash ---- */

static void hex_of(const hash_t *h, char out[HASH_HEX_LEN + 1]) { hash_to_hex(h, out); }

static void hash_sha256_known_vectors(void **state)
{
    (void)state;
    hash_t h;
    char hex[HASH_HEX_LEN + 1];
    hash_sha256("abc", 3, &h);
    hex_of(&h, hex);
    assert_string_equal(hex, ABC_SHA256);
    hash_sha256("", 0, &h);
    hex_of(&h, hex);
    assert_string_equal(hex, EMPTY_SHA256);
    char b64[HASH_B64_LEN + 1]; /* the form of a CSP 'sha256-...' source (the status page's) */
    hash_to_base64(&h, b64);
    assert_string_equal(b64, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    hash_sha256("abc", 3, &h);
    hash_to_base64(&h, b64);
    assert_string_equal(b64, "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
    hash_sha256("", 0, &h);
    hash_sha256(LONG_MSG, strlen(LONG_MSG), &h);
    hex_of(&h, hex);
    assert_string_equal(hex, LONG_SHA256);
}

static void hash_ctx_matches_one_shot_and_resets(void **state)
{
    (void)state;
    hash_ctx_t *c = hash_ctx_new();
    hash_t h, one;
    char hex[HASH_HEX_LEN + 1];
    /* Fed a byte at a time, then in two uneven pieces after the reset done by final. */
    for (size_t i = 0; i < strlen(LONG_MSG); i++)
        hash_ctx_update(c, &LONG_MSG[i], 1);
    hash_ctx_final(c, &h);
    hex_of(&h, hex);
    assert_string_equal(hex, LONG_SHA256);
    hash_ctx_update(c, "a", 1);
    hash_ctx_update(c, "", 0);
    hash_ctx_update(c, "bc", 2);
    hash_ctx_final(c, &h);
    hex_of(&h, hex);
    assert_string_equal(hex, ABC_SHA256);
    hash_ctx_final(c, &h); /* nothing fed since the last final: the empty string */
    hex_of(&h, hex);
    assert_string_equal(hex, EMPTY_SHA256);

    /* A larger buffer: incremental in odd-sized chunks equals one-shot. */
    size_t n = 1000003;
    unsigned char *big = xmalloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (unsigned char)(i * 7 + 3);
    hash_sha256(big, n, &one);
    for (size_t off = 0; off < n; off += 4099)
        hash_ctx_update(c, big + off, n - off < 4099 ? n - off : 4099);
    hash_ctx_final(c, &h);
    assert_true(hash_equal(&h, &one));
    free(big);
    hash_ctx_free(c);
    hash_ctx_free(NULL);
}

static void hash_hex_round_trip(void **state)
{
    (void)state;
    hash_t h, back;
    char hex[HASH_HEX_LEN + 1];
    for (int i = 0; i < HASH_LEN; i++)
        h.b[i] = (uint8_t)(i * 37 + 250);
    hash_to_hex(&h, hex);
    assert_int_equal(strlen(hex), HASH_HEX_LEN);
    assert_int_equal(hash_from_hex(hex, HASH_HEX_LEN, &back), 0);
    assert_true(hash_equal(&h, &back));
    /* Upper case is accepted and means the same. */
    char upper[HASH_HEX_LEN + 1];
    for (int i = 0; i <= HASH_HEX_LEN; i++)
        upper[i] = (char)(hex[i] >= 'a' && hex[i] <= 'f' ? hex[i] - 'a' + 'A' : hex[i]);
    memset(&back, 0, sizeof(back));
    assert_int_equal(hash_from_hex(upper, HASH_HEX_LEN, &back), 0);
    assert_true(hash_equal(&h, &back));
    back.b[31] ^= 1;
    assert_false(hash_equal(&h, &back));
}

static void hash_from_hex_rejects_bad_input(void **state)
{
    (void)state;
    hash_t h, orig;
    memset(&h, 0x5a, sizeof(h));
    orig = h;
    char hex[HASH_HEX_LEN + 2];
    memcpy(hex, ABC_SHA256, HASH_HEX_LEN + 1);
    assert_int_equal(hash_from_hex(hex, HASH_HEX_LEN - 1, &h), -EINVAL);
    assert_int_equal(hash_from_hex(hex, 0, &h), -EINVAL);
    hex[HASH_HEX_LEN] = 'a';
    hex[HASH_HEX_LEN + 1] = '\0';
    assert_int_equal(hash_from_hex(hex, HASH_HEX_LEN + 1, &h), -EINVAL);
    memcpy(hex, ABC_SHA256, HASH_HEX_LEN + 1);
    hex[10] = 'g';
    assert_int_equal(hash_from_hex(hex, HASH_HEX_LEN, &h), -EINVAL);
    hex[10] = ' ';
    assert_int_equal(hash_from_hex(hex, HASH_HEX_LEN, &h), -EINVAL);
    memcpy(hex, ABC_SHA256, HASH_HEX_LEN + 1);
    hex[HASH_HEX_LEN - 1] = '\0'; /* NUL inside the claimed length */
    assert_int_equal(hash_from_hex(hex, HASH_HEX_LEN, &h), -EINVAL);
    assert_int_equal(hash_from_hex(NULL, HASH_HEX_LEN, &h), -EINVAL);
    assert_true(hash_equal(&h, &orig)); /* untouched on error */
}

/* ---- xalloc ---- */

static void xalloc_basics(void **state)
{
    (void)state;
    void *p = xmalloc(0);
    assert_non_null(p);
    p = xrealloc(p, 0);
    assert_non_null(p);
    free(p);
    unsigned char *z = xcalloc(100, 3);
    for (int i = 0; i < 300; i++)
        assert_int_equal(z[i], 0);
    free(z);
    z = xcalloc(0, 5);
    assert_non_null(z);
    free(z);
    int *a = xreallocarray(NULL, 10, sizeof(int));
    for (int i = 0; i < 10; i++)
        a[i] = i;
    a = xreallocarray(a, 1000, sizeof(int));
    assert_int_equal(a[9], 9);
    free(a);
    char *s = xstrdup("hello");
    assert_string_equal(s, "hello");
    free(s);
    s = xstrndup("hello", 3);
    assert_string_equal(s, "hel");
    free(s);
    s = xstrndup("hi", 10);
    assert_string_equal(s, "hi");
    free(s);
    s = xasprintf("%s-%d-%05.1f", "x", 42, 2.5);
    assert_string_equal(s, "x-42-002.5");
    free(s);
}

/* Runs fn in a child and asserts it died of SIGABRT (xalloc's answer to impossible sizes). */
static void assert_child_aborts(void (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, STDERR_FILENO); /* keep the OOM message and sanitizer report out of test output */
        fn();
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

static void overflow_reallocarray(void)
{
    void *p = xreallocarray(NULL, SIZE_MAX / 2 + 2, 2);
    free(p);
}

static void xreallocarray_aborts_on_overflow(void **state)
{
    (void)state;
    assert_child_aborts(overflow_reallocarray);
}

/* ---- log ---- */

typedef struct log_fixture {
    char path[64];
    int saved_stderr;
} log_fixture_t;

static int log_setup(void **state)
{
    log_fixture_t *f = xcalloc(1, sizeof(*f));
    strcpy(f->path, "/tmp/preon-test-log-XXXXXX");
    int fd = mkstemp(f->path);
    if (fd < 0)
        return -1;
    close(fd);
    fflush(stderr);
    f->saved_stderr = dup(STDERR_FILENO);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, STDERR_FILENO);
    close(devnull);
    if (log_set_file(f->path) != 0)
        return -1;
    *state = f;
    return 0;
}

static int log_teardown(void **state)
{
    log_fixture_t *f = *state;
    log_set_file(NULL);
    log_set_level(LOG_LEVEL_INFO);
    dup2(f->saved_stderr, STDERR_FILENO);
    close(f->saved_stderr);
    unlink(f->path);
    free(f);
    return 0;
}

static char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    char *buf = xmalloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *len = got;
    return buf;
}

/* Splits buf into lines (in place); returns the count, each line checked against the format. */
static size_t check_lines(char *buf, char ***lines_out)
{
    regex_t re;
    assert_int_equal(regcomp(&re,
                             "^[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\\.[0-9]{3}Z "
                             "(ERROR|WARN|INFO|DEBUG) ",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    size_t n = 0, cap = 16;
    char **lines = xmalloc(cap * sizeof(char *));
    char *p = buf;
    while (*p) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl); /* every line is terminated */
        *nl = '\0';
        assert_int_equal(regexec(&re, p, 0, NULL, 0), 0);
        if (n == cap)
            lines = xreallocarray(lines, cap *= 2, sizeof(char *));
        lines[n++] = p;
        p = nl + 1;
    }
    regfree(&re);
    *lines_out = lines;
    return n;
}

static const char *body(const char *line) { return line + strlen("2026-11-21T19:42:19.123Z "); }

static void log_parse_level_names(void **state)
{
    (void)state;
    enum log_level l = LOG_LEVEL_INFO;
    assert_int_equal(log_parse_level("error", &l), 0);
    assert_int_equal(l, LOG_LEVEL_ERROR);
    assert_int_equal(log_parse_level("warn", &l), 0);
    assert_int_equal(l, LOG_LEVEL_WARN);
    assert_int_equal(log_parse_level("DEBUG", &l), 0);
    assert_int_equal(l, LOG_LEVEL_DEBUG);
    assert_int_equal(log_parse_level("info", &l), 0);
    assert_int_equal(l, LOG_LEVEL_INFO);
    assert_int_equal(log_parse_level("verbose", &l), -EINVAL);
    assert_int_equal(log_parse_level("", &l), -EINVAL);
    assert_int_equal(log_parse_level(NULL, &l), -EINVAL);
    assert_int_equal(l, LOG_LEVEL_INFO);
}

static void log_writes_formatted_lines_and_filters_levels(void **state)
{
    log_fixture_t *f = *state;
    errno = EAGAIN;
    log_info("hello %d", 42);
    assert_int_equal(errno, EAGAIN); /* logging keeps errno */
    log_debug("hidden at info");
    log_error("bad %s", "thing");
    log_set_level(LOG_LEVEL_WARN);
    log_info("hidden at warn");
    log_warn("careful");
    log_set_level(LOG_LEVEL_DEBUG);
    log_debug("now shown");
    log_info("two\nlines\r");
    log_msg((enum log_level)7, "out of range level is dropped");

    size_t len;
    char *buf = slurp(f->path, &len);
    char **lines;
    size_t n = check_lines(buf, &lines);
    assert_int_equal(n, 5);
    assert_string_equal(body(lines[0]), "INFO hello 42");
    assert_string_equal(body(lines[1]), "ERROR bad thing");
    assert_string_equal(body(lines[2]), "WARN careful");
    assert_string_equal(body(lines[3]), "DEBUG now shown");
    assert_string_equal(body(lines[4]), "INFO two lines"); /* no forged second line */
    free(lines);
    free(buf);
}

static void log_truncates_long_messages(void **state)
{
    log_fixture_t *f = *state;
    size_t big = 20000;
    char *msg = xmalloc(big + 1);
    memset(msg, 'x', big);
    msg[big] = '\0';
    log_info("%s", msg);
    log_info("after");
    free(msg);
    size_t len;
    char *buf = slurp(f->path, &len);
    char **lines;
    size_t n = check_lines(buf, &lines);
    assert_int_equal(n, 2);
    size_t l0 = strlen(lines[0]);
    assert_true(l0 < 8192 && l0 > 8000);
    assert_string_equal(lines[0] + l0 - 4, "x...");
    assert_string_equal(body(lines[1]), "INFO after");
    free(lines);
    free(buf);
}

#define LOG_THREADS 8
#define LOG_PER_THREAD 300
#define LOG_PAD 3000

static char log_pad[LOG_PAD + 1]; /* filled before the threads start, read-only after */

static void *log_worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    const char *pad = log_pad;
    for (int i = 0; i < LOG_PER_THREAD; i++)
        log_info("t%d i%d %.*s end", id, i, LOG_PAD, pad);
    return NULL;
}

static void log_lines_from_threads_do_not_interleave(void **state)
{
    log_fixture_t *f = *state;
    pthread_t th[LOG_THREADS];
    memset(log_pad, 'a', LOG_PAD);
    for (int i = 0; i < LOG_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, log_worker, (void *)(intptr_t)i), 0);
    for (int i = 0; i < LOG_THREADS; i++)
        pthread_join(th[i], NULL);
    size_t len;
    char *buf = slurp(f->path, &len);
    char **lines;
    size_t n = check_lines(buf, &lines);
    assert_int_equal(n, LOG_THREADS * LOG_PER_THREAD);
    int next[LOG_THREADS] = {0};
    for (size_t i = 0; i < n; i++) {
        int id = -1, seq = -1, used = 0;
        assert_int_equal(sscanf(body(lines[i]), "INFO t%d i%d %n", &id, &seq, &used), 2);
        assert_true(id >= 0 && id < LOG_THREADS);
        assert_int_equal(seq, next[id]++); /* each thread's lines arrive whole and in order */
        const char *rest = body(lines[i]) + used;
        assert_int_equal(strlen(rest), LOG_PAD + 4);
        assert_string_equal(rest + LOG_PAD, " end");
    }
    free(lines);
    free(buf);
}

static void log_set_file_reports_errors(void **state)
{
    (void)state;
    assert_int_equal(log_set_file("/nonexistent-dir-preon/x.log"), -ENOENT);
}

/* ---- files: rm -rf and the walk, at any depth with a handful of fds ---- */

static char *tmp_tree(void)
{
    char tmpl[] = "/tmp/preon-files-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    return xstrdup(tmpl);
}

/* A chain of n nested directories "d" under root, each with a file "f"; made through fds so the
 * path's length does not matter. */
static void deep_chain(const char *root, int n)
{
    int fd = open(root, O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0);
    for (int i = 0; i < n; i++) {
        assert_int_equal(mkdirat(fd, "d", 0755), 0);
        int f = openat(fd, "f", O_WRONLY | O_CREAT, 0644);
        assert_true(f >= 0);
        close(f);
        int next = openat(fd, "d", O_RDONLY | O_DIRECTORY);
        assert_true(next >= 0);
        close(fd);
        fd = next;
    }
    close(fd);
}

static void files_rm_rf_any_depth_with_few_fds(void **state)
{
    char *root = tmp_tree();
    deep_chain(root, 20000); /* far deeper than PATH_MAX allows as a path */
    struct rlimit old, low = {.rlim_cur = 16, .rlim_max = 0};
    getrlimit(RLIMIT_NOFILE, &old);
    low.rlim_max = old.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0); /* recursion with an fd per level fails here */
    int rc = files_rm_rf(root);
    setrlimit(RLIMIT_NOFILE, &old);
    assert_int_equal(rc, 0);
    struct stat st;
    assert_int_equal(lstat(root, &st), -1);
    free(root);
}

/* A move across filesystems (here /dev/shm, a tmpfs, to a directory under /tmp) copies the bytes
 * and the mode, then removes the source; within one it is a rename. */
static void files_move_copies_across_filesystems(void **state)
{
    char shm[64];
    snprintf(shm, sizeof(shm), "/dev/shm/test_core.%d", (int)getpid());
    assert_int_equal(mkdir(shm, 0700), 0);
    char *src = xasprintf("%s/f", shm), *root = tmp_tree(), *to = xasprintf("%s/moved", root);
    FILE *f = fopen(src, "w");
    assert_non_null(f);
    for (int i = 0; i < 100000; i++)
        fputs("0123456789", f);
    fclose(f);
    assert_int_equal(chmod(src, 0750), 0);
    int d = open(shm, O_RDONLY | O_DIRECTORY);
    assert_int_equal(files_move(d, "f", to), 0);
    struct stat st;
    assert_int_equal(lstat(src, &st), -1);
    assert_int_equal(stat(to, &st), 0);
    assert_int_equal(st.st_size, 1000000);
    assert_int_equal(st.st_mode & 07777, 0750);
    /* the target must not exist: refused, the source stays */
    f = fopen(src, "w");
    fclose(f);
    assert_int_equal(files_move(d, "f", to), -EEXIST);
    assert_int_equal(lstat(src, &st), 0);
    close(d);
    files_rm_rf(shm);
    files_rm_rf(root);
    free(src);
    free(to);
    free(root);
}

static void files_rm_rf_does_not_follow_symlinks(void **state)
{
    char *root = tmp_tree(), *outside = tmp_tree();
    char *keep = xasprintf("%s/keep", outside), *link = xasprintf("%s/link", root);
    char *sub = xasprintf("%s/sub", root), *sublink = xasprintf("%s/sub/dirlink", root);
    FILE *f = fopen(keep, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(symlink(keep, link), 0);
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(symlink(outside, sublink), 0);
    for (int i = 0; i < 300; i++) { /* a wide level too */
        char *p = xasprintf("%s/sub/w%d", root, i);
        assert_int_equal(mkdir(p, 0755), 0);
        free(p);
    }
    assert_int_equal(files_rm_rf(root), 0);
    struct stat st;
    assert_int_equal(lstat(root, &st), -1);
    assert_int_equal(lstat(keep, &st), 0); /* what the links pointed at is untouched */
    assert_int_equal(files_rm_rf(outside), 0);
    assert_int_equal(files_rm_rf(root), 0); /* gone already: not an error */
    free(root), free(outside), free(keep), free(link), free(sub), free(sublink);
}

/* An entry that cannot go (a mount point: EBUSY) does not stop rm -rf: everything else goes, and
 * the first error is returned. Needs root for the mount; skipped otherwise. */
static void files_rm_rf_goes_on_past_an_entry_it_cannot_remove(void **state)
{
    char *root = tmp_tree();
    char *m = xasprintf("%s/m", root), *a = xasprintf("%s/a", root), *z = xasprintf("%s/z", root);
    char *zz = xasprintf("%s/z/zz", root);
    assert_int_equal(mkdir(m, 0755), 0);
    assert_int_equal(mkdir(z, 0755), 0);
    FILE *f = fopen(a, "w");
    fclose(f);
    f = fopen(zz, "w");
    fclose(f);
    if (mount("none", m, "tmpfs", 0, "size=1m") != 0) {
        files_rm_rf(root);
        free(root), free(m), free(a), free(z), free(zz);
        skip();
    }
    int rc = files_rm_rf(root);
    struct stat st;
    assert_true(rc < 0);
    assert_int_equal(lstat(a, &st), -1);
    assert_int_equal(lstat(z, &st), -1); /* a sibling after the mount point went too */
    assert_int_equal(lstat(m, &st), 0);
    assert_int_equal(umount(m), 0);
    assert_int_equal(files_rm_rf(root), 0);
    assert_int_equal(lstat(root, &st), -1);
    free(root), free(m), free(a), free(z), free(zz);
}

typedef struct seen {
    char lines[16][64];
    int n;
} seen_t;

static int note_entry(void *arg, int dirfd, const char *name, const char *rel, const struct stat *st)
{
    seen_t *s = arg;
    if (s->n < 16)
        snprintf(s->lines[s->n++], sizeof(s->lines[0]), "%s|%s", rel, name);
    return 0;
}

static int cmp_line(const void *a, const void *b) { return strcmp(a, b); }

static void files_walk_reports_paths_and_stops_at_max_rel(void **state)
{
    char *root = tmp_tree();
    const char *dirs[] = {"a", "a/b", "a/b/c", "z"};
    const char *files[] = {"top", "a/x", "a/b/y", "a/b/c/deep", "z/q"};
    for (size_t i = 0; i < 4; i++) {
        char *p = xasprintf("%s/%s", root, dirs[i]);
        assert_int_equal(mkdir(p, 0755), 0);
        free(p);
    }
    for (size_t i = 0; i < 5; i++) {
        char *p = xasprintf("%s/%s", root, files[i]);
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        fclose(f);
        free(p);
    }
    int fd = open(root, O_RDONLY | O_DIRECTORY);
    seen_t s = {0};
    assert_int_equal(files_walk(fd, SIZE_MAX, 0, note_entry, NULL, &s), 0);
    qsort(s.lines, (size_t)s.n, sizeof(s.lines[0]), cmp_line);
    assert_int_equal(s.n, 5);
    assert_string_equal(s.lines[0], "a/b/c|deep");
    assert_string_equal(s.lines[1], "a/b|y");
    assert_string_equal(s.lines[2], "a|x");
    assert_string_equal(s.lines[3], "z|q");
    assert_string_equal(s.lines[4], "|top");
    seen_t t = {0};
    assert_int_equal(files_walk(fd, 3, 0, note_entry, NULL, &t), 0); /* "a/b" is 3 bytes: "a/b/c" is not entered */
    assert_int_equal(t.n, 4);
    /* FILES_WALK_DEEP_DIRS: the directory not entered is reported instead (the collector says it
     * did not keep what is in it) */
    seen_t u = {0};
    assert_int_equal(files_walk(fd, 3, FILES_WALK_DEEP_DIRS, note_entry, NULL, &u), 0);
    qsort(u.lines, (size_t)u.n, sizeof(u.lines[0]), cmp_line);
    assert_int_equal(u.n, 5);
    assert_string_equal(u.lines[0], "a/b|c");
    close(fd);
    assert_int_equal(files_rm_rf(root), 0);
    free(root);
}

/* sdnotify_take takes $NOTIFY_SOCKET out of the environment (no child inherits it); sdnotify_send
 * sends one datagram to it, a path or an abstract name; without one, nothing; a bad or too long
 * address is -EINVAL, never a truncated one. */
static void sdnotify_sends_to_a_path_and_an_abstract_socket(void **state)
{
    char dir[] = "/tmp/preon-sdnotify.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/notify", dir);
    for (int abstract = 0; abstract < 2; abstract++) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        char name[128];
        if (abstract)
            snprintf(name, sizeof(name), "@preon-test-%ld", (long)getpid());
        else
            snprintf(name, sizeof(name), "%s", path);
        memcpy(sa.sun_path, name, strlen(name));
        if (abstract)
            sa.sun_path[0] = '\0';
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
                                                                      strlen(name))), 0);
        setenv("NOTIFY_SOCKET", name, 1);
        char *addr = sdnotify_take();
        assert_non_null(addr);
        assert_string_equal(addr, name);
        assert_null(getenv("NOTIFY_SOCKET"));
        assert_int_equal(sdnotify_send(addr, "READY=1"), 0);
        assert_int_equal(sdnotify_send(addr, "STOPPING=1"), 0); /* still known after the take */
        char buf[64] = {0};
        assert_int_equal(recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT), 7);
        assert_string_equal(buf, "READY=1");
        memset(buf, 0, sizeof(buf));
        assert_int_equal(recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT), 10);
        assert_string_equal(buf, "STOPPING=1");
        free(addr);
        close(fd);
    }
    assert_int_equal(sdnotify_send("relative/path", "READY=1"), -EINVAL);
    assert_int_equal(sdnotify_send("@", "READY=1"), -EINVAL);
    char longp[200];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[0] = '/';
    longp[sizeof(longp) - 1] = '\0';
    assert_int_equal(sdnotify_send(longp, "READY=1"), -EINVAL);
    longp[sizeof(((struct sockaddr_un *)0)->sun_path)] = '\0'; /* a path with no room for its NUL */
    assert_int_equal(sdnotify_send(longp, "READY=1"), -EINVAL);
    assert_true(sdnotify_send(path, "READY=1") < 0); /* nobody listening any more */
    setenv("NOTIFY_SOCKET", "", 1);
    assert_null(sdnotify_take());
    unsetenv("NOTIFY_SOCKET");
    assert_null(sdnotify_take());
    assert_int_equal(sdnotify_send(NULL, "READY=1"), 0);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hash_sha256_known_vectors),
        cmocka_unit_test(files_rm_rf_any_depth_with_few_fds),
        cmocka_unit_test(files_move_copies_across_filesystems),
        cmocka_unit_test(files_rm_rf_does_not_follow_symlinks),
        cmocka_unit_test(files_rm_rf_goes_on_past_an_entry_it_cannot_remove),
        cmocka_unit_test(files_walk_reports_paths_and_stops_at_max_rel),
        cmocka_unit_test(hash_ctx_matches_one_shot_and_resets),
        cmocka_unit_test(hash_hex_round_trip),
        cmocka_unit_test(hash_from_hex_rejects_bad_input),
        cmocka_unit_test(xalloc_basics),
        cmocka_unit_test(xreallocarray_aborts_on_overflow),
        cmocka_unit_test(log_parse_level_names),
        cmocka_unit_test_setup_teardown(log_writes_formatted_lines_and_filters_levels, log_setup, log_teardown),
        cmocka_unit_test_setup_teardown(log_truncates_long_messages, log_setup, log_teardown),
        cmocka_unit_test_setup_teardown(log_lines_from_threads_do_not_interleave, log_setup, log_teardown),
        cmocka_unit_test_setup_teardown(log_set_file_reports_errors, log_setup, log_teardown),
        cmocka_unit_test(sdnotify_sends_to_a_path_and_an_abstract_socket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
