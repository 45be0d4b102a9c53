/*
 * test_jobdesc.c: unit tests for core/jobdesc.c, the preon.job parser.
 *
 * Every rejection the parser makes has a test here that checks both the return code and that
 * `why` names the line and the problem, since that text is what a researcher sees in the status
 * file. Each test releases the descriptor even after an error, so ASan catches leaks and
 * half-applied values.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/jobdesc.h"
#include "core/xalloc.h"

#define MIB (1024ull * 1024)
#define GIB (1024ull * MIB)

static char why[512];

static int parse(jobdesc_t *d, const char *text) { return jobdesc_parse(d, text, strlen(text), why, sizeof(why)); }

/* Parses text into a fresh descriptor, expects -EINVAL and a `why` containing each needle. */
static void expect_reject(const char *text, const char *needle1, const char *needle2)
{
    jobdesc_t d;
    jobdesc_init(&d);
    int rc = parse(&d, text);
    if (rc != -EINVAL || !strstr(why, needle1) || (needle2 && !strstr(why, needle2)))
        print_error("input: %s\nrc %d, why: %s\n", text, rc, why);
    assert_int_equal(rc, -EINVAL);
    assert_non_null(strstr(why, needle1));
    if (needle2)
        assert_non_null(strstr(why, needle2));
    jobdesc_release(&d);
}

static void expect_accept(const char *text)
{
    jobdesc_t d;
    jobdesc_init(&d);
    int rc = parse(&d, text);
    if (rc != 0)
        print_error("input: %s\nwhy: %s\n", text, why);
    assert_int_equal(rc, 0);
    assert_int_equal(jobdesc_check(&d, why, sizeof(why)), 0);
    jobdesc_release(&d);
}

static void jobdesc_init_sets_defaults(void **state)
{
    (void)state;
    jobdesc_t d;
    jobdesc_init(&d);
    assert_string_equal(d.command, JOBDESC_DEFAULT_COMMAND);
    assert_int_equal(d.tasks, 1);
    assert_int_equal(d.n_outputs, 0);
    assert_null(d.outputs);
    assert_int_equal(d.timeout_ms, 3600 * 1000);
    assert_int_equal(d.memory_bytes, GIB);
    assert_int_equal(d.disk_bytes, GIB);
    assert_int_equal(d.processes, 64);
    assert_int_equal(d.replicas, 1);
    assert_null(d.os);
    assert_null(d.arch);
    assert_false(d.network);
    assert_int_equal(jobdesc_check(&d, why, sizeof(why)), 0);
    jobdesc_release(&d);
    jobdesc_release(&d); /* release leaves it zeroed: a second one is harmless */
}

static void jobdesc_parse_full_file(void **state)
{
    (void)state;
    const char *text = "\xef\xbb\xbf# Mandelbrot, one tile per task\n"
                       "\n"
                       "command = ./mandel --tile $PREON_TASK > out.pgm  # not a comment\r\n"
                       "  tasks\t=\t64  \n"
                       "outputs = *.pgm   logs/*.txt\n"
                       "timeout = 5m\n"
                       "memory = 512M\n"
                       "disk = 2GiB\n"
                       "processes = 8\n"
                       "replicas = 3\n"
                       "quorum = 3\n"
                       "max-replicas = 5\n"
                       "   # indented comment\n"
                       "os = linux\n"
                       "arch = x86_64\n"
                       "network = yes"; /* no final newline */
    jobdesc_t d;
    jobdesc_init(&d);
    assert_int_equal(parse(&d, text), 0);
    assert_string_equal(why, "");
    assert_string_equal(d.command, "./mandel --tile $PREON_TASK > out.pgm  # not a comment");
    assert_int_equal(d.tasks, 64);
    assert_int_equal(d.n_outputs, 2);
    assert_string_equal(d.outputs[0], "*.pgm");
    assert_string_equal(d.outputs[1], "logs/*.txt");
    assert_int_equal(d.timeout_ms, 300000);
    assert_int_equal(d.memory_bytes, 512 * MIB);
    assert_int_equal(d.disk_bytes, 2 * GIB);
    assert_int_equal(d.processes, 8);
    assert_int_equal(d.replicas, 3);
    assert_int_equal(jobdesc_quorum(&d), 3);
    assert_int_equal(jobdesc_max_replicas(&d), 5);
    assert_string_equal(d.os, "linux");
    assert_string_equal(d.arch, "x86_64");
    assert_true(d.network);
    assert_int_equal(jobdesc_check(&d, why, sizeof(why)), 0);

    /* A deep copy survives the original's release. */
    jobdesc_t c;
    jobdesc_copy(&c, &d);
    jobdesc_release(&d);
    assert_string_equal(c.command, "./mandel --tile $PREON_TASK > out.pgm  # not a comment");
    assert_string_equal(c.outputs[1], "logs/*.txt");
    assert_string_equal(c.arch, "x86_64");
    assert_int_equal(c.replicas, 3);
    jobdesc_release(&c);
}

static void jobdesc_parse_empty_and_comment_only_keep_defaults(void **state)
{
    (void)state;
    jobdesc_t d;
    jobdesc_init(&d);
    assert_int_equal(jobdesc_parse(&d, "", 0, why, sizeof(why)), 0);
    assert_int_equal(parse(&d, "# nothing\n\n   \n\t\r\n"), 0);
    assert_string_equal(d.command, JOBDESC_DEFAULT_COMMAND);
    assert_int_equal(d.tasks, 1);
    jobdesc_release(&d);
}

static void jobdesc_parse_value_keeps_equals_and_hash(void **state)
{
    (void)state;
    jobdesc_t d;
    jobdesc_init(&d);
    assert_int_equal(parse(&d, "command=env A=1 B==2 sh -c 'echo #$A'\n"), 0);
    assert_string_equal(d.command, "env A=1 B==2 sh -c 'echo #$A'");
    jobdesc_release(&d);
}

static void jobdesc_parse_second_call_replaces_values(void **state)
{
    (void)state;
    jobdesc_t d;
    jobdesc_init(&d);
    assert_int_equal(parse(&d, "outputs = a b\nos = linux\n"), 0);
    assert_int_equal(parse(&d, "outputs = c\nos = freebsd\n"), 0); /* duplicates only count within a file */
    assert_int_equal(d.n_outputs, 1);
    assert_string_equal(d.outputs[0], "c");
    assert_string_equal(d.os, "freebsd");
    jobdesc_release(&d);
}

static void jobdesc_parse_rejects_oversize(void **state)
{
    (void)state;
    size_t n = JOBDESC_MAX_BYTES + 1;
    char *text = xmalloc(n);
    memset(text, '\n', n);
    text[0] = '#';
    jobdesc_t d;
    jobdesc_init(&d);
    assert_int_equal(jobdesc_parse(&d, text, n, why, sizeof(why)), -EMSGSIZE);
    assert_non_null(strstr(why, "larger than"));
    /* Exactly at the limit is fine. */
    assert_int_equal(jobdesc_parse(&d, text, n - 1, why, sizeof(why)), 0);
    jobdesc_release(&d);
    free(text);
}

static void jobdesc_parse_rejects_nul_byte(void **state)
{
    (void)state;
    const char text[] = "tasks = 2\ncommand = a\0b\n";
    jobdesc_t d;
    jobdesc_init(&d);
    assert_int_equal(jobdesc_parse(&d, text, sizeof(text) - 1, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "line 2: NUL byte"));
    jobdesc_release(&d);
    /* Even inside a comment. */
    const char c[] = "# a\0b\n";
    jobdesc_init(&d);
    assert_int_equal(jobdesc_parse(&d, c, sizeof(c) - 1, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "line 1: NUL byte"));
    jobdesc_release(&d);
}

static void jobdesc_parse_rejects_bad_lines(void **state)
{
    (void)state;
    expect_reject("tasks = 2\njust some words\n", "line 2: expected 'key = value'", "just some words");
    expect_reject("= 5\n", "line 1: empty key", NULL);
    expect_reject("  \t= 5\n", "line 1: empty key", NULL);
    expect_reject("# comment\ntasks = 2\ntaks = 3\n", "line 3: unknown key 'taks' (known: command, tasks,", "network, grace)");
    expect_reject("Tasks = 3\n", "unknown key 'Tasks'", NULL);
    expect_reject("tasks = 2\n\ntasks = 3\n", "line 3: duplicate key 'tasks' (first set on line 1)", NULL);
    expect_reject("command = caf\xc3\n", "line 1: not valid UTF-8", NULL);
    expect_reject("command = \xc0\xaf\n", "not valid UTF-8", NULL); /* overlong '/' */
    expect_reject("command = \xed\xa0\x80\n", "not valid UTF-8", NULL); /* surrogate */
    expect_reject("command = a\x1b[31mb\n", "line 1: control character 0x1b", NULL);
    expect_reject("command = a\rb\n", "control character 0x0d", NULL);
    expect_accept("command = caf\xc3\xa9 \xf0\x9f\x98\x80\n");
}

static void jobdesc_parse_rejects_long_value(void **state)
{
    (void)state;
    size_t n = strlen("command = ") + JOBDESC_MAX_VALUE + 2;
    char *text = xmalloc(n + 1);
    strcpy(text, "command = ");
    memset(text + 10, 'x', JOBDESC_MAX_VALUE + 1);
    text[10 + JOBDESC_MAX_VALUE + 1] = '\n';
    text[n] = '\0';
    expect_reject(text, "line 1: command: value longer than 4096 bytes", NULL);
    /* One byte less is the longest value accepted. */
    text[10 + JOBDESC_MAX_VALUE] = '\n';
    text[10 + JOBDESC_MAX_VALUE + 1] = '\0';
    expect_accept(text);
    free(text);
}

static void jobdesc_parse_rejects_bad_numbers(void **state)
{
    (void)state;
    expect_reject("tasks = 12x\n", "line 1: tasks: '12x' is not a whole number", NULL);
    expect_reject("tasks =\n", "line 1: tasks: empty value", NULL);
    expect_reject("tasks =   \n", "tasks: empty value", NULL);
    expect_reject("tasks = -1\n", "'-1' is not a whole number", NULL);
    expect_reject("tasks = +1\n", "'+1' is not a whole number", NULL);
    expect_reject("tasks = 0x10\n", "'0x10' is not a whole number", NULL);
    expect_reject("tasks = 1 2\n", "'1 2' is not a whole number", NULL);
    expect_reject("tasks = 99999999999999999999999\n", "tasks: must be 1..100000", "99999999999999999999999");
    expect_reject("tasks = 99999999999999999999999x\n", "is not a whole number", NULL);
    expect_reject("processes = 4x\n", "processes: '4x' is not a whole number", NULL);
    expect_reject("replicas = two\n", "replicas: 'two' is not a whole number", NULL);
    expect_reject("timeout = 5 minutes\n", "timeout: '5 minutes' is not a duration", NULL);
    expect_reject("timeout = -5m\n", "is not a duration", NULL);
    expect_reject("timeout =\n", "timeout: empty value", NULL);
    expect_reject("memory = 1.5G\n", "memory: '1.5G' is not a size", NULL);
    expect_reject("memory = 12Q\n", "is not a size", NULL);
    expect_reject("disk = -1G\n", "disk: '-1G' is not a size", NULL);
    expect_reject("disk = 99999999999999999999T\n", "disk: too large", NULL);
    expect_accept("tasks = 007\n");
}

static void jobdesc_parse_rejects_out_of_range(void **state)
{
    (void)state;
    expect_reject("tasks = 0\n", "line 1: tasks: must be 1..100000 (got 0)", NULL);
    expect_reject("grace = 0\n", "line 1: grace: must be between 1s and 1h (got 0)", NULL);
    expect_reject("grace = 61m\n", "grace: must be between 1s and 1h (got 61m)", NULL);
    expect_reject("grace = soon\n", "grace: 'soon' is not a duration", NULL);
    {
        jobdesc_t d;
        jobdesc_init(&d);
        assert_int_equal(d.grace_ms, 0); /* the executor's default */
        assert_int_equal(parse(&d, "grace = 30s\n"), 0);
        assert_int_equal(d.grace_ms, 30000);
        assert_int_equal(parse(&d, "grace = 1h\n"), 0);
        assert_int_equal(d.grace_ms, JOBDESC_MAX_GRACE_MS);
        jobdesc_release(&d);
    }
    expect_reject("tasks = 100001\n", "tasks: must be 1..100000 (got 100001)", NULL);
    expect_accept("tasks = 100000\n");
    expect_reject("replicas = 0\n", "replicas: must be 1..16 (got 0)", NULL);
    expect_reject("replicas = 17\n", "replicas: must be 1..16 (got 17)", NULL);
    expect_accept("replicas = 16\n");
    expect_reject("replicas = 3\nquorum = 4\n", "quorum must be 1..replicas (3) (got 4)", NULL);
    expect_reject("quorum = 2\n", "quorum must be 1..replicas (1) (got 2)", NULL);
    expect_reject("replicas = 3\nmax-replicas = 2\n", "max-replicas must be replicas (3)..32 (got 2)", NULL);
    expect_reject("max-replicas = 33\n", "max-replicas: must be 1..32 (got 33)", NULL);
    expect_accept("replicas = 16\nmax-replicas = 32\n");
    expect_reject("replicas = sometimes\n", "'sometimes' is not a whole number (digits only), nor adaptive", NULL);
    {
        jobdesc_t d;
        jobdesc_init(&d);
        assert_int_equal(parse(&d, "replicas = adaptive\n"), 0);
        assert_true(d.adaptive);
        assert_int_equal(d.replicas, 2);
        assert_int_equal(jobdesc_quorum(&d), 2);
        assert_int_equal(jobdesc_max_replicas(&d), 4);
        jobdesc_release(&d);
    }
    {
        jobdesc_t d;
        jobdesc_init(&d);
        d.replicas = 3;
        assert_int_equal(jobdesc_quorum(&d), 2); /* a majority */
        assert_int_equal(jobdesc_max_replicas(&d), 6);
        d.replicas = 4;
        assert_int_equal(jobdesc_quorum(&d), 3);
        jobdesc_release(&d);
    }
    expect_reject("processes = 0\n", "processes: must be 1..4096", NULL);
    expect_reject("processes = 4097\n", "processes: must be 1..4096", NULL);
    expect_accept("processes = 4096\n");
    expect_reject("timeout = 0\n", "timeout: must be between 1s and 7d (got 0)", NULL);
    expect_reject("timeout = 0s\n", "timeout: must be between 1s and 7d", NULL);
    expect_reject("timeout = 8d\n", "timeout: must be between 1s and 7d (got 8d)", NULL);
    expect_reject("timeout = 604801\n", "timeout: must be between", NULL);
    expect_reject("timeout = 99999999999999999999d\n", "timeout: must be between", NULL);
    expect_accept("timeout = 7d\n");
    expect_accept("timeout = 604800\n");
    expect_accept("timeout = 1\n");
    expect_reject("memory = 1023K\n", "memory: must be at least 1M (got 1023K)", NULL);
    expect_reject("memory = 0\n", "memory: must be at least 1M", NULL);
    expect_accept("memory = 1M\n");
    expect_accept("memory = 1048576\n");
    expect_reject("disk = 1000000\n", "disk: must be at least 1M", NULL);
}

static void jobdesc_parse_rejects_bad_yes_no(void **state)
{
    (void)state;
    expect_reject("network = maybe\n", "line 1: network: 'maybe' is not yes or no", NULL);
    expect_reject("network = 1\n", "'1' is not yes or no", NULL);
    expect_reject("network =\n", "network: empty value", NULL);
    jobdesc_t d;
    jobdesc_init(&d);
    assert_int_equal(parse(&d, "network = YES\n"), 0);
    assert_true(d.network);
    jobdesc_release(&d);
    jobdesc_init(&d);
    d.network = true;
    assert_int_equal(parse(&d, "network = false\n"), 0);
    assert_false(d.network);
    jobdesc_release(&d);
}

static void jobdesc_parse_rejects_bad_outputs(void **state)
{
    (void)state;
    expect_reject("outputs = /etc/passwd\n", "line 1: outputs: '/etc/passwd': output pattern must be relative", NULL);
    expect_reject("outputs = ok.txt ../x\n", "'../x': output pattern has a '..' part", NULL);
    expect_reject("outputs = a/../b\n", "has a '..' part", NULL);
    expect_reject("outputs = a/..\n", "has a '..' part", NULL);
    expect_reject("outputs = ./x\n", "has a '.' part", NULL);
    expect_reject("outputs = a//b\n", "has an empty part", NULL);
    expect_reject("outputs = dir/\n", "has an empty part", NULL);
    expect_reject("outputs =\n", "line 1: outputs: no patterns", NULL);
    expect_reject("outputs = \t \n", "outputs: no patterns", NULL);
    expect_accept("outputs = ..x x.. .hidden a/.b/*.txt\n");

    /* JOBDESC_MAX_OUTPUTS patterns are fine, one more is not. */
    char text[1024] = "outputs =";
    for (int i = 0; i < JOBDESC_MAX_OUTPUTS; i++)
        snprintf(text + strlen(text), sizeof(text) - strlen(text), " f%d", i);
    expect_accept(text);
    strcat(text, " one-more");
    expect_reject(text, "outputs: more than 64 output patterns", NULL);
}

static void jobdesc_parse_rejects_empty_command(void **state)
{
    (void)state;
    expect_reject("command =\n", "line 1: command: empty command", NULL);
    expect_reject("tasks = 2\ncommand = \t \n", "line 2: command: empty command", NULL);
}

static void jobdesc_parse_rejects_bad_os_arch(void **state)
{
    (void)state;
    expect_reject("os = linux; rm -rf\n", "line 1: os: 'linux; rm -rf' may contain only", NULL);
    expect_reject("arch =\n", "arch: empty value", NULL);
    expect_accept("os = linux\narch = aarch64\n");
}

static void jobdesc_error_keeps_earlier_values_and_releases(void **state)
{
    (void)state;
    jobdesc_t d;
    jobdesc_init(&d);
    assert_int_equal(parse(&d, "outputs = a b\ncommand = ./x\ntasks = zero\nreplicas = 3\n"), -EINVAL);
    assert_non_null(strstr(why, "line 3"));
    assert_int_equal(d.n_outputs, 2);
    assert_string_equal(d.command, "./x");
    assert_int_equal(d.replicas, 1); /* never reached */
    jobdesc_release(&d);
}

static void jobdesc_why_may_be_tiny(void **state)
{
    (void)state;
    jobdesc_t d;
    jobdesc_init(&d);
    char small[8];
    assert_int_equal(jobdesc_parse(&d, "taks = 1", 8, small, sizeof(small)), -EINVAL);
    assert_string_equal(small, "line 1:");
    assert_int_equal(jobdesc_parse(&d, "taks = 1", 8, NULL, 0), -EINVAL);
    jobdesc_release(&d);
}

static void jobdesc_parse_size_forms(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        uint64_t v;
    } ok[] = {
        {"0", 0},           {"1", 1},           {"1024", 1024},   {"1K", 1024},       {"1k", 1024},
        {"1KB", 1024},      {"1KiB", 1024},     {"1kib", 1024},   {"2M", 2 * MIB},    {"2MB", 2 * MIB},
        {"512MiB", 512 * MIB}, {"3G", 3 * GIB}, {"1T", 1024 * GIB}, {"1 G", GIB},      {"100B", 100},
        {"8388607T", 8388607ull << 40},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t v = 12345;
        assert_int_equal(jobdesc_parse_size(ok[i].s, &v), 0);
        assert_int_equal(v, ok[i].v);
    }
    static const char *const bad[] = {"", "K", "1X", "1Ki", "1KiBx", "-1", "1.5G", " 1", "1K ", "1iB", "1KK", "0x10"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v = 7;
        assert_int_equal(jobdesc_parse_size(bad[i], &v), -EINVAL);
        assert_int_equal(v, 7);
    }
    uint64_t v = 7;
    assert_int_equal(jobdesc_parse_size("8388608T", &v), -ERANGE); /* 2^63: past int64 */
    assert_int_equal(jobdesc_parse_size("9223372036854775808", &v), -ERANGE);
    assert_int_equal(jobdesc_parse_size("18446744073709551616", &v), -ERANGE);
    assert_int_equal(jobdesc_parse_size("9223372036854775807", &v), 0);
    assert_int_equal(v, INT64_MAX);
}

/* jobdesc_format_size writes what jobdesc_parse_size reads back, for exact multiples. */
static void jobdesc_format_size_forms(void **state)
{
    (void)state;
    static const struct {
        uint64_t v;
        const char *s;
    } cases[] = {
        {0, "0B"},         {1, "1B"},          {1023, "1023B"},        {1024, "1K"},
        {1536, "1.5K"},    {1048575, "1.0M"},  {64 * GIB, "64G"},      {16 * GIB, "16G"},
        {GIB + GIB / 2, "1.5G"}, {512 * MIB, "512M"}, {3 * 1024 * GIB, "3T"}, {5000 * 1024 * GIB, "5000T"},
    };
    char buf[32];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_string_equal(jobdesc_format_size(cases[i].v, buf, sizeof(buf)), cases[i].s);
        uint64_t back;
        if (!strchr(buf, '.')) {
            assert_int_equal(jobdesc_parse_size(buf, &back), 0);
            assert_int_equal(back, cases[i].v);
        }
    }
    assert_string_equal(jobdesc_format_size(64 * GIB, buf, 3), "64"); /* cut at cap */
}

static void jobdesc_parse_duration_forms(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        uint64_t ms;
    } ok[] = {{"30", 30000}, {"30s", 30000}, {"5m", 300000}, {"2h", 7200000}, {"1d", 86400000}, {"0", 0}, {"90 s", 90000}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t ms = 1;
        assert_int_equal(jobdesc_parse_duration(ok[i].s, &ms), 0);
        assert_int_equal(ms, ok[i].ms);
    }
    static const char *const bad[] = {"", "m", "5x", "5M", "5 mins", "-5", "1.5h", "5ms", "h5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t ms = 1;
        assert_int_equal(jobdesc_parse_duration(bad[i], &ms), -EINVAL);
        assert_int_equal(ms, 1);
    }
    uint64_t ms;
    assert_int_equal(jobdesc_parse_duration("99999999999999999999", &ms), -ERANGE);
    assert_int_equal(jobdesc_parse_duration("9223372036854776s", &ms), -ERANGE);
}

static void jobdesc_check_rejects_each_field(void **state)
{
    (void)state;
    jobdesc_t d;
#define CHECK_BAD(stmt, needle)                                                                                        \
    do {                                                                                                               \
        jobdesc_init(&d);                                                                                              \
        stmt;                                                                                                          \
        assert_int_equal(jobdesc_check(&d, why, sizeof(why)), -EINVAL);                                               \
        assert_non_null(strstr(why, needle));                                                                          \
        jobdesc_release(&d);                                                                                           \
    } while (0)
    CHECK_BAD((free(d.command), d.command = xstrdup("")), "command: empty command");
    CHECK_BAD((free(d.command), d.command = NULL), "command: empty command");
    CHECK_BAD((free(d.command), d.command = xstrdup("a\nb")), "command: contains a control character");
    CHECK_BAD((free(d.command), d.command = xstrdup("\xff")), "command: not valid UTF-8");
    CHECK_BAD(d.tasks = 0, "tasks must be");
    CHECK_BAD(d.tasks = JOBDESC_MAX_TASKS + 1, "tasks must be");
    CHECK_BAD(d.replicas = 17, "replicas must be");
    CHECK_BAD(d.processes = 0, "processes must be");
    CHECK_BAD(d.timeout_ms = 0, "timeout must be");
    CHECK_BAD(d.timeout_ms = JOBDESC_MAX_TIMEOUT_MS + 1, "timeout must be");
    CHECK_BAD(d.grace_ms = JOBDESC_MAX_GRACE_MS + 1, "grace must be at most 1h");
    CHECK_BAD(d.memory_bytes = MIB - 1, "memory must be");
    CHECK_BAD(d.memory_bytes = (uint64_t)INT64_MAX + 1, "memory must be");
    CHECK_BAD(d.disk_bytes = 0, "disk must be");
    CHECK_BAD(d.os = xstrdup("lin ux"), "os: may contain only");
    CHECK_BAD(d.arch = xstrdup(""), "arch: empty");
    CHECK_BAD((d.outputs = xcalloc(1, sizeof(char *)), d.outputs[0] = xstrdup("a b"), d.n_outputs = 1),
              "outputs[0]: output pattern contains a blank");
    CHECK_BAD((d.outputs = xcalloc(1, sizeof(char *)), d.outputs[0] = xstrdup(""), d.n_outputs = 1),
              "outputs[0]: empty output pattern");
    CHECK_BAD((d.outputs = xcalloc(1, sizeof(char *)), d.n_outputs = 1), "outputs[0]: missing");
#undef CHECK_BAD
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(jobdesc_init_sets_defaults),
        cmocka_unit_test(jobdesc_parse_full_file),
        cmocka_unit_test(jobdesc_parse_empty_and_comment_only_keep_defaults),
        cmocka_unit_test(jobdesc_parse_value_keeps_equals_and_hash),
        cmocka_unit_test(jobdesc_parse_second_call_replaces_values),
        cmocka_unit_test(jobdesc_parse_rejects_oversize),
        cmocka_unit_test(jobdesc_parse_rejects_nul_byte),
        cmocka_unit_test(jobdesc_parse_rejects_bad_lines),
        cmocka_unit_test(jobdesc_parse_rejects_long_value),
        cmocka_unit_test(jobdesc_parse_rejects_bad_numbers),
        cmocka_unit_test(jobdesc_parse_rejects_out_of_range),
        cmocka_unit_test(jobdesc_parse_rejects_bad_yes_no),
        cmocka_unit_test(jobdesc_parse_rejects_bad_outputs),
        cmocka_unit_test(jobdesc_parse_rejects_empty_command),
        cmocka_unit_test(jobdesc_parse_rejects_bad_os_arch),
        cmocka_unit_test(jobdesc_error_keeps_earlier_values_and_releases),
        cmocka_unit_test(jobdesc_why_may_be_tiny),
        cmocka_unit_test(jobdesc_parse_size_forms),
        cmocka_unit_test(jobdesc_format_size_forms),
        cmocka_unit_test(jobdesc_parse_duration_forms),
        cmocka_unit_test(jobdesc_check_rejects_each_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
