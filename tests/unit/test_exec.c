/*
 * test_exec.c: the sandbox runner. The pure builders (argv, env, bwrap status, the limiter's option
 * parsing) are checked exactly; then real tasks run in bwrap on a real loop, as root, on slot uids
 * UID_BASE.. (not preon's default 64000, so that a preon running meanwhile does not share them),
 * with a uv_timer watchdog that fails the test instead of any sleep.
 *
 * This binary is also its own limiter: run as `test_exec limit ...` it is `preon limit ...`
 * (exec_limit_main(argc - 1, argv + 1)), so the tests exercise the same rlimit wrapper as preon.
 * PREON_TEST_LIMITER=/abs/preon-limit names another limiter: `make tsan` passes an uninstrumented
 * preon-limit, since a ThreadSanitizer runtime in the sandbox (its shadow memory, its own threads)
 * would not fit the tasks' memory limits and would be counted in the tasks' peak memory.
 * The real runs are skipped unless we are root and /usr/bin/bwrap is there.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>
#include <dirent.h>

#include "core/files.h"
#include "exec/exec.h"
#include "exec/internal.h"
#include "exec/msg.h"

#define WATCHDOG_MS 30000
#define SLOTS 4
/* Slot uids of this run: apart from preon's default (64000) and from any other test_exec running
 * at the same time (each checks that nothing is left under its uids). */
static unsigned uid_base;
#define UID_BASE uid_base

/* the limiter: this binary (or $PREON_TEST_LIMITER), resolved before any setuid */
static char self_exe[PATH_MAX];

/* ---- fixture: a loop, an executor and a scratch directory tree ---- */

typedef struct fixture fixture_t;

typedef struct rec {
    fixture_t *f;
    int calls;
    exec_result_t res;
} rec_t;

struct fixture {
    uv_loop_t loop;
    uv_timer_t watchdog;
    bool watchdog_fired;
    char base[64];
    char job_dir[128], task_dir[128], scratch[128], out[128], err[128];
    exec_opts_t opts;
    exec_t *e;
    int done;
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void on_watchdog(uv_timer_t *t)
{
    fixture_t *f = t->data;
    f->watchdog_fired = true;
    uv_stop(&f->loop);
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

/* The whole file, NUL-terminated; NULL if it cannot be read. */
static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return NULL;
    char *buf = calloc(1, 1 << 20);
    assert_non_null(buf);
    size_t n = fread(buf, 1, (1 << 20) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->watchdog);
    f->watchdog.data = f;
    uv_timer_start(&f->watchdog, on_watchdog, WATCHDOG_MS, 0);
    uv_unref((uv_handle_t *)&f->watchdog);
    snprintf(f->base, sizeof(f->base), "/tmp/test_exec.XXXXXX");
    assert_non_null(mkdtemp(f->base));
    /* The slot uid must be able to reach the job and task directories. */
    assert_int_equal(chmod(f->base, 0755), 0);
    snprintf(f->job_dir, sizeof(f->job_dir), "%s/job", f->base);
    snprintf(f->task_dir, sizeof(f->task_dir), "%s/task", f->base);
    snprintf(f->scratch, sizeof(f->scratch), "%s/task.ovl", f->base);
    snprintf(f->out, sizeof(f->out), "%s/stdout", f->base);
    snprintf(f->err, sizeof(f->err), "%s/stderr", f->base);
    assert_int_equal(mkdir(f->job_dir, 0755), 0);
    assert_int_equal(mkdir(f->task_dir, 0700), 0);
    assert_int_equal(mkdir(f->scratch, 0700), 0);
    char p[192];
    snprintf(p, sizeof(p), "%s/input.txt", f->job_dir);
    write_file(p, "input data\n");
    assert_int_equal(chmod(p, 0644), 0);
    f->opts = (exec_opts_t){.bwrap = "/usr/bin/bwrap", .limiter = self_exe, .uid_base = UID_BASE,
                            .gid_base = UID_BASE, .slots = SLOTS, .allow_network = true};
    assert_int_equal(exec_new(&f->loop, &f->opts, &f->e), 0);
    *state = f;
    return 0;
}

/* Processes (zombies included) whose real uid is uid: what is left of a sandbox. */
static int count_uid_procs(uid_t uid)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        char p[300], line[256];
        snprintf(p, sizeof(p), "/proc/%s/status", de->d_name);
        FILE *fp = fopen(p, "r");
        if (!fp)
            continue; /* gone meanwhile */
        unsigned ruid;
        while (fgets(line, sizeof(line), fp))
            if (sscanf(line, "Uid: %u", &ruid) == 1 && ruid == uid)
                n++;
        fclose(fp);
    }
    closedir(d);
    return n;
}

static void closed_cb(void *arg) { (*(int *)arg)++; }

static int teardown(void **state)
{
    fixture_t *f = *state;
    int closed = 0;
    if (f->e)
        exec_close(f->e, closed_cb, &closed);
    uv_timer_stop(&f->watchdog);
    uv_close((uv_handle_t *)&f->watchdog, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    if (f->e)
        assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    /* Closed, the executor leaves nothing: no process of a slot uid, warm sandboxes' included. */
    for (unsigned k = 0; k < SLOTS && geteuid() == 0; k++)
        assert_int_equal(count_uid_procs(UID_BASE + k), 0);
    nftw(f->base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static bool can_sandbox(void) { return geteuid() == 0 && access("/usr/bin/bwrap", X_OK) == 0; }

#define NEED_SANDBOX()                                                                             \
    do {                                                                                           \
        if (!can_sandbox())                                                                        \
            skip();                                                                                \
    } while (0)

/* Whether pid is one of a sandbox's own two processes (bwrap's monitor, the agent), which stay
 * while the sandbox is warm; not part of any task. */
static bool sandbox_own(const char *pid)
{
    char p[300], buf[64] = "";
    snprintf(p, sizeof(p), "/proc/%s/cmdline", pid);
    FILE *fp = fopen(p, "r");
    if (!fp)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    static const char agent[] = "/proc/self/fd/7\0limit\0--agent\0";
    return (n >= sizeof(agent) - 1 && !memcmp(buf, agent, sizeof(agent) - 1)) ||
           (n >= 15 && !memcmp(buf, "/usr/bin/bwrap\0", 15));
}

/* Processes of uid that belong to a task: what is left of a task once its callback has fired
 * (its sandbox's own two processes stay while it is warm; the agent's child looks like the agent
 * until it has exec'd the command). */
static int count_task_procs(uid_t uid)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        char p[300], line[256];
        snprintf(p, sizeof(p), "/proc/%s/status", de->d_name);
        FILE *fp = fopen(p, "r");
        if (!fp)
            continue;
        unsigned ruid;
        bool mine = false;
        while (fgets(line, sizeof(line), fp))
            if (sscanf(line, "Uid: %u", &ruid) == 1 && ruid == uid)
                mine = true;
        fclose(fp);
        n += mine && !sandbox_own(de->d_name);
    }
    closedir(d);
    return n;
}

static exec_spec_t spec_for(fixture_t *f, const char *command)
{
    return (exec_spec_t){.job_dir = f->job_dir, .task_dir = f->task_dir, .scratch_dir = f->scratch, .command = command,
                         .stdout_path = f->out, .stderr_path = f->err, .job_id = "abc123",
                         .job_name = "demo", .task_index = 0, .task_count = 1, .timeout_ms = 20000,
                         .memory_bytes = 512ull << 20, .disk_bytes = 64ull << 20, .processes = 64,
                         .slot = 1};
}

static void on_done(exec_task_t *t, const exec_result_t *r, void *arg)
{
    (void)t;
    rec_t *rec = arg;
    rec->calls++;
    rec->res = *r;
    rec->f->done++;
}

/* Runs the loop until `n` callbacks in all have fired; the watchdog fails the test instead. */
static void run_until(fixture_t *f, int n)
{
    while (f->done < n && !f->watchdog_fired)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_false(f->watchdog_fired);
}

/* Runs the loop until an exec_close's callback has counted in *closed. */
static void run_until_closed(fixture_t *f, int *closed)
{
    while (*closed == 0 && !f->watchdog_fired)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_false(f->watchdog_fired);
}

/* Spawns one task, checks the callback is not called from inside the spawn, waits for it. */
static void run_task(fixture_t *f, exec_t *e, const exec_spec_t *spec, rec_t *rec)
{
    rec->f = f;
    int before = f->done;
    assert_int_equal(exec_task_spawn(e, spec, on_done, rec, NULL), 0);
    assert_int_equal(rec->calls, 0);
    run_until(f, before + 1);
    assert_int_equal(rec->calls, 1);
}

/* ---- pure: argv ---- */

static const char *const expected_bwrap_head[] = {
    "--cap-drop", "ALL", "--die-with-parent", "--new-session", "--as-pid-1", "--ro-bind", "/usr", "/usr",
    "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
    "--symlink", "usr/sbin", "/sbin",
    "--ro-bind-try", "/etc/alternatives", "/etc/alternatives",
    "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
    "--ro-bind-try", "/etc/ld.so.conf", "/etc/ld.so.conf",
    "--ro-bind-try", "/etc/ld.so.conf.d", "/etc/ld.so.conf.d",
    "--ro-bind-try", "/etc/passwd", "/etc/passwd",
    "--ro-bind-try", "/etc/group", "/etc/group",
    "--ro-bind-try", "/etc/nsswitch.conf", "/etc/nsswitch.conf",
    "--ro-bind-try", "/etc/hosts", "/etc/hosts",
    "--ro-bind-try", "/etc/host.conf", "/etc/host.conf",
    "--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf",
    "--ro-bind-try", "/etc/gai.conf", "/etc/gai.conf",
    "--ro-bind-try", "/etc/protocols", "/etc/protocols",
    "--ro-bind-try", "/etc/services", "/etc/services",
    "--ro-bind-try", "/etc/localtime", "/etc/localtime",
    "--ro-bind-try", "/etc/ssl", "/etc/ssl",
    "--ro-bind-try", "/etc/ca-certificates", "/etc/ca-certificates",
    "--ro-bind-try", "/etc/mime.types", "/etc/mime.types",
    "--proc", "/proc", "--dev", "/dev", "--bind", "/run/preon-sandbox/shm", "/dev/shm", "--remount-ro", "/dev",
    "--bind", "/run/preon-sandbox/tmp", "/tmp",
    "--ro-bind", "/run/preon-sandbox/job", "/job", "--bind", "/run/preon-sandbox/root", "/task",
    "--remount-ro", "/", "--chdir", "/", "--hostname", "preon", "--json-status-fd", "3",
    "--", "/proc/self/fd/7", "limit", "--agent", "8",
};

static exec_spec_t pure_spec(void)
{
    return (exec_spec_t){.job_dir = "/data/mnt/jobs/demo", .task_dir = "/data/work/abc.3",
                         .scratch_dir = "/data/work/abc.3.ovl",
                         .command = "./run --fast", .stdout_path = "/data/work/abc.3.stdout",
                         .stderr_path = "/data/work/abc.3.stderr", .job_id = "abc", .job_name = "demo",
                         .task_index = 3, .task_count = 8, .timeout_ms = 60000,
                         .memory_bytes = 268435456, .disk_bytes = 1048576, .processes = 10, .slot = 2};
}

static const exec_opts_t pure_opts = {.bwrap = "/usr/bin/bwrap", .limiter = "/usr/local/bin/preon",
                                      .uid_base = 64000, .gid_base = 64000, .slots = 4};

static void check_argv(char **argv, bool share_net)
{
    static const char *const head[] = {
        "/usr/local/bin/preon", "limit", "--dir", "/data/mnt/jobs/demo", "job", "--keeper", "5", "--tmpfs-size",
        "1048576", "--gid", "64002", "--uid", "64002", "--nproc", "13", "--fsize", "1048576",
        "--core", "0", "--nofile", "1024", "--msgqueue", "0", "--", "/usr/bin/bwrap", "--unshare-all",
    };
    size_t i = 0, nhead = sizeof(head) / sizeof(head[0]);
    for (size_t k = 0; k < nhead; k++, i++) {
        assert_non_null(argv[i]);
        assert_string_equal(argv[i], head[k]);
    }
    if (share_net)
        assert_string_equal(argv[i++], "--share-net");
    size_t ntail = sizeof(expected_bwrap_head) / sizeof(expected_bwrap_head[0]);
    for (size_t k = 0; k < ntail; k++, i++) {
        assert_non_null(argv[i]);
        assert_string_equal(argv[i], expected_bwrap_head[k]);
    }
    assert_null(argv[i]);
}

/* A dead peer whose pid this process now has left its cgroup and a task's behind (pids are reused,
 * in a container above all): the next open must clear them, or the first task of that name is
 * refused (EEXIST: a flaky fork-bomb test in CI that found no forks refused). */
static void cgroup_left_by_a_dead_peer_of_our_pid_is_cleared(void **state)
{
    (void)state;
    NEED_SANDBOX();
    exec_cg_t cg;
    char why[256];
    exec_cg_limits_t lim = {.ncpu = 1};
    if (exec__cg_open(&cg, &lim, why, sizeof(why)) != 0 || exec__cg_missing(&cg))
        skip();
    int oom_fd;
    assert_int_equal(exec__cg_task_make(&cg, "t0-1", 64u << 20, 8, &oom_fd, why, sizeof(why)), 0);
    if (oom_fd >= 0)
        close(oom_fd);
    /* the peer "dies": its cgroups stay (nothing closed) */
    for (int c = 0; c < EXEC_CG_N; c++)
        free(cg.dir[c]);
    free(cg.v2_self);
    exec_cg_t again;
    assert_int_equal(exec__cg_open(&again, &lim, why, sizeof(why)), 0);
    assert_int_equal(exec__cg_task_make(&again, "t0-1", 64u << 20, 8, &oom_fd, why, sizeof(why)), 0);
    if (oom_fd >= 0)
        close(oom_fd);
    exec_cg_stats_t st;
    assert_int_equal(exec__cg_task_end(&again, "t0-1", NULL, &st), 0);
    exec__cg_close(&again);
}

static void cgroup_mounts_and_self_are_parsed(void **state)
{
    (void)state;
    const char *mi =
        "25 30 0:23 / /sys rw,nosuid shared:7 - sysfs sysfs rw\n"
        "31 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n"
        "32 31 0:27 / /sys/fs/cgroup/unified rw shared:10 - cgroup2 cgroup2 rw,nsdelegate\n"
        "35 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw shared:14 - cgroup cgroup rw,cpu,cpuacct\n"
        "36 31 0:31 /box /sys/fs/cgroup/mem\\040ory rw shared:15 - cgroup cgroup rw,memory\n"
        "37 31 0:32 / /sys/fs/cgroup/pids rw master:1 shared:16 - cgroup cgroup rw,pids\n"
        "38 31 0:33 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset\n";
    exec_cg_mounts_t m;
    assert_int_equal(exec__cg_parse_mounts(mi, &m), 0);
    assert_string_equal(m.v2, "/sys/fs/cgroup/unified");
    assert_string_equal(m.v1[EXEC_CG_CPU], "/sys/fs/cgroup/cpu,cpuacct"); /* cpuset is not cpu */
    assert_string_equal(m.v1[EXEC_CG_MEMORY], "/sys/fs/cgroup/mem ory");
    assert_string_equal(m.v1_root[EXEC_CG_MEMORY], "/box");
    assert_string_equal(m.v1[EXEC_CG_PIDS], "/sys/fs/cgroup/pids");
    exec__cg_mounts_free(&m);
    assert_int_equal(exec__cg_parse_mounts("garbage\n- - -\n\n", &m), 0);
    assert_null(m.v2);
    assert_null(m.v1[EXEC_CG_MEMORY]);
    exec__cg_mounts_free(&m);

    const char *self = "12:pids:/user.slice\n4:memory:/process_api/85ac\n3:cpu,cpuacct:/\n0::/user.slice/x\n";
    char *p = NULL;
    assert_int_equal(exec__cg_parse_self(self, "memory", &p), 0);
    assert_string_equal(p, "/process_api/85ac");
    free(p);
    assert_int_equal(exec__cg_parse_self(self, "cpu", &p), 0);
    assert_string_equal(p, "/");
    free(p);
    assert_int_equal(exec__cg_parse_self(self, NULL, &p), 0);
    assert_string_equal(p, "/user.slice/x");
    free(p);
    assert_int_equal(exec__cg_parse_self(self, "freezer", &p), -ENOENT);
    assert_null(p);
    assert_int_equal(exec__cg_parse_self("4:memory\n", "memory", &p), -ENOENT);

    uint64_t v = 0;
    assert_int_equal(exec__cg_parse_key("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", "oom_kill", &v), 0);
    assert_int_equal(v, 3);
    assert_int_equal(exec__cg_parse_key("max 12\n", "max", &v), 0);
    assert_int_equal(v, 12);
    assert_int_equal(exec__cg_parse_key("maxx 12\n", "max", &v), -ENOENT);
    assert_int_equal(exec__cg_parse_key("max x\n", "max", &v), -EBADMSG);
}

static void argv_typical_spec_is_exact(void **state)
{
    (void)state;
    exec_spec_t s = pure_spec();
    char **argv = NULL;
    assert_int_equal(exec_build_argv(&pure_opts, &s, &argv), 0);
    check_argv(argv, false);
    exec_argv_free(argv);
}

static void argv_shares_net_only_if_asked_and_allowed(void **state)
{
    (void)state;
    exec_spec_t s = pure_spec();
    exec_opts_t o = pure_opts;
    char **argv = NULL;
    s.network = true; /* asked, not allowed: no network (exec_task_spawn refuses such a task) */
    assert_int_equal(exec_build_argv(&o, &s, &argv), 0);
    check_argv(argv, false);
    exec_argv_free(argv);
    o.allow_network = true; /* asked and allowed */
    assert_int_equal(exec_build_argv(&o, &s, &argv), 0);
    check_argv(argv, true);
    exec_argv_free(argv);
    s.network = false; /* allowed, not asked */
    assert_int_equal(exec_build_argv(&o, &s, &argv), 0);
    check_argv(argv, false);
    exec_argv_free(argv);
}

static void argv_default_bwrap_path(void **state)
{
    (void)state;
    exec_spec_t s = pure_spec();
    exec_opts_t o = pure_opts;
    o.bwrap = NULL;
    char **argv = NULL;
    assert_int_equal(exec_build_argv(&o, &s, &argv), 0);
    size_t i = 0;
    while (argv[i] && strcmp(argv[i], "--") != 0)
        i++;
    assert_non_null(argv[i]);
    assert_string_equal(argv[i + 1], "/usr/bin/bwrap");
    exec_argv_free(argv);
}

static void expect_rejected(const exec_opts_t *o, const exec_spec_t *s, const char *why_part)
{
    char **argv = (char **)1;
    assert_int_equal(exec_build_argv(o, s, &argv), -EINVAL);
    assert_null(argv);
    char why[EXEC_MAX_REASON] = "";
    assert_int_equal(exec__check_spec(o, s, why, sizeof(why)), -EINVAL);
    if (!strstr(why, why_part))
        fail_msg("reason '%s' does not mention '%s'", why, why_part);
}

static void argv_rejects_bad_specs(void **state)
{
    (void)state;
    exec_spec_t s;
    exec_opts_t o = pure_opts;
    char **argv = NULL;

    s = pure_spec();
    s.memory_bytes = EXEC_MIN_MEMORY - 1;
    expect_rejected(&o, &s, "minimum of 16 MiB");
    s.memory_bytes = EXEC_MIN_MEMORY; /* the boundary itself is fine */
    assert_int_equal(exec_build_argv(&o, &s, &argv), 0);
    exec_argv_free(argv);

    s = pure_spec();
    s.command = NULL;
    expect_rejected(&o, &s, "no command");
    s.command = "";
    expect_rejected(&o, &s, "no command");
    char *huge = malloc(EXEC_MAX_COMMAND + 2);
    assert_non_null(huge);
    memset(huge, 'x', EXEC_MAX_COMMAND + 1);
    huge[EXEC_MAX_COMMAND + 1] = '\0';
    s.command = huge;
    expect_rejected(&o, &s, "longer than");
    free(huge);

    s = pure_spec();
    s.job_dir = "jobs/demo";
    expect_rejected(&o, &s, "job directory");
    s = pure_spec();
    s.task_dir = "work/abc.3";
    expect_rejected(&o, &s, "task directory");
    s = pure_spec();
    s.scratch_dir = NULL;
    expect_rejected(&o, &s, "scratch directory");
    s = pure_spec();
    s.stdout_path = "out";
    expect_rejected(&o, &s, "stdout");
    s = pure_spec();
    s.job_dir = NULL;
    expect_rejected(&o, &s, "job directory");

    s = pure_spec();
    o.limiter = "preon";
    expect_rejected(&o, &s, "limiter");
    o.limiter = NULL;
    expect_rejected(&o, &s, "limiter");
    o = pure_opts;
    o.bwrap = "bwrap";
    expect_rejected(&o, &s, "bwrap");
    o = pure_opts;

    s = pure_spec();
    s.slot = 4;
    expect_rejected(&o, &s, "slot 4");
    s = pure_spec();
    s.processes = 0;
    expect_rejected(&o, &s, "processes");
    s = pure_spec();
    s.disk_bytes = 0;
    expect_rejected(&o, &s, "disk");
    s = pure_spec();
    s.timeout_ms = 0;
    expect_rejected(&o, &s, "time-out");
    s = pure_spec();
    s.job_id = "not-hex";
    expect_rejected(&o, &s, "job id");
    s = pure_spec();
    s.job_name = "";
    expect_rejected(&o, &s, "job name");
    s = pure_spec();
    s.task_index = 8;
    expect_rejected(&o, &s, "task 8");

    s = pure_spec();
    assert_int_equal(exec_build_argv(NULL, &s, &argv), -EINVAL);
    assert_int_equal(exec_build_argv(&o, NULL, &argv), -EINVAL);
    assert_int_equal(exec_build_argv(&o, &s, NULL), -EINVAL);
}

/* ---- pure: env ---- */

static void env_has_the_task_identity_and_nothing_else(void **state)
{
    (void)state;
    exec_spec_t s = pure_spec();
    char **env = NULL;
    assert_int_equal(exec_build_env(&s, &env), 0);
    static const char *const expected[] = {
        "PATH=/job:/usr/local/bin:/usr/bin:/bin", "HOME=/task", "TMPDIR=/tmp", "LANG=C.UTF-8",
        "PREON_TASK=3", "PREON_TASKS=8", "PREON_JOB=demo", "PREON_JOB_ID=abc",
        "PREON_JOB_DIR=/job", "PREON_TASK_DIR=/task",
    };
    size_t n = sizeof(expected) / sizeof(expected[0]);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(env[i]);
        assert_string_equal(env[i], expected[i]);
    }
    assert_null(env[n]);
    exec_argv_free(env);

    s.task_index = 8;
    assert_int_equal(exec_build_env(&s, &env), -EINVAL);
    assert_null(env);
    s = pure_spec();
    s.job_id = NULL;
    assert_int_equal(exec_build_env(&s, &env), -EINVAL);
    assert_int_equal(exec_build_env(NULL, &env), -EINVAL);
}

/* ---- pure: bwrap's status ---- */

static void status_needs_the_exit_code_object(void **state)
{
    (void)state;
    int code = -1;
    pid_t pid = -1;
    const char *ok = "{ \"child-pid\": 4287, \"mnt-namespace\": 4026532180 }\n{ \"exit-code\": 3 }\n";
    assert_int_equal(exec__parse_status(ok, strlen(ok), &code, &pid), 0);
    assert_int_equal(code, 3);
    assert_int_equal(pid, 4287);
    const char *no_trailing_nl = "{ \"child-pid\": 12 }\n{ \"exit-code\": 0 }";
    assert_int_equal(exec__parse_status(no_trailing_nl, strlen(no_trailing_nl), &code, &pid), 0);
    assert_int_equal(code, 0);
    assert_int_equal(pid, 12);
    /* bwrap wrote the pid, then died setting up: never built */
    const char *setup_failed = "{ \"child-pid\": 4279, \"pid-namespace\": 4026532181 }\n";
    assert_int_equal(exec__parse_status(setup_failed, strlen(setup_failed), &code, &pid), -ENOENT);
    assert_int_equal(pid, 4279);
    assert_int_equal(exec__parse_status("", 0, &code, &pid), -ENOENT);
    assert_int_equal(pid, 0);
    const char *junk = "{ \"child-pid\": 12 }\nexit-code: 0\n";
    assert_int_equal(exec__parse_status(junk, strlen(junk), &code, &pid), -EBADMSG);
    const char *truncated = "{ \"child-pid\": 12 }\n{ \"exit-code\": ";
    assert_int_equal(exec__parse_status(truncated, strlen(truncated), &code, &pid), -EBADMSG);
    const char *bad_code = "{ \"exit-code\": 999 }";
    assert_int_equal(exec__parse_status(bad_code, strlen(bad_code), &code, &pid), -EBADMSG);
    const char *str_code = "{ \"exit-code\": \"0\" }";
    assert_int_equal(exec__parse_status(str_code, strlen(str_code), &code, &pid), -EBADMSG);
    /* a pid we must never wait on or signal */
    const char *init_pid = "{ \"child-pid\": 1 }";
    assert_int_equal(exec__parse_status(init_pid, strlen(init_pid), &code, &pid), -EBADMSG);
    const char *neg_pid = "{ \"child-pid\": -1 }";
    assert_int_equal(exec__parse_status(neg_pid, strlen(neg_pid), &code, &pid), -EBADMSG);
    const char *array = "[1, 2]";
    assert_int_equal(exec__parse_status(array, strlen(array), &code, &pid), -EBADMSG);
    assert_int_equal(exec__parse_status(ok, EXEC_MAX_STATUS + 1, &code, &pid), -EMSGSIZE);
}

/* ---- the messages between preon, a keeper and its agent (exec/msg.c) ---- */

static void msg_round_trip_and_bad_messages(void **state)
{
    (void)state;
    char buf[256];
    const char *f[] = {"/w/t", "", "echo a b"};
    int len = exec__msg_encode('R', f, 3, buf, sizeof(buf));
    assert_int_equal(len, 1 + 5 + 1 + 9);
    exec_msg_t m;
    assert_int_equal(exec__msg_decode(buf, (size_t)len, &m), 0);
    assert_int_equal(m.type, 'R');
    assert_int_equal(m.nf, 3);
    assert_string_equal(m.f[0], "/w/t");
    assert_string_equal(m.f[1], "");
    assert_string_equal(m.f[2], "echo a b");
    assert_int_equal(exec__msg_decode(buf, 1, &m), 0); /* a type alone */
    assert_int_equal(m.nf, 0);
    /* what the agent (in the sandbox) could send instead */
    assert_int_equal(exec__msg_decode(buf, 0, &m), -EPROTO);
    assert_int_equal(exec__msg_decode((char[]){'1', 0}, 2, &m), -EPROTO);  /* a type must be a letter */
    assert_int_equal(exec__msg_decode((char[]){'D', '1'}, 2, &m), -EPROTO); /* a field without its NUL */
    char many[1 + 2 * (EXEC_MSG_MAX_FIELDS + 1)];
    many[0] = 'D';
    for (int i = 0; i <= EXEC_MSG_MAX_FIELDS; i++)
        many[1 + 2 * i] = 'x', many[2 + 2 * i] = '\0';
    assert_int_equal(exec__msg_decode(many, sizeof(many), &m), -EPROTO);
    assert_int_equal(exec__msg_decode(many, sizeof(many) - 2, &m), 0);
    assert_int_equal(exec__msg_encode('R', f, 3, buf, 8), -EMSGSIZE);
    long long v;
    assert_int_equal(exec__msg_int("256", 0, 0xffff, &v), 0);
    assert_int_equal(v, 256);
    assert_int_equal(exec__msg_int("-5", -10, 10, &v), 0);
    assert_int_equal(v, -5);
    assert_int_equal(exec__msg_int("65536", 0, 0xffff, &v), -EPROTO);
    assert_int_equal(exec__msg_int("1x", 0, 10, &v), -EPROTO);
    assert_int_equal(exec__msg_int(" 1", 0, 10, &v), -EPROTO);
    assert_int_equal(exec__msg_int("", 0, 10, &v), -EPROTO);
    assert_int_equal(exec__msg_int("-", 0, 10, &v), -EPROTO);
    assert_int_equal(exec__msg_int("99999999999999999999", 0, 10, &v), -EPROTO);
}

static void msg_carries_descriptors_and_refuses_a_cut_message(void **state)
{
    (void)state;
    int sp[2], p[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
    assert_int_equal(pipe(p), 0);
    const char *f[] = {"0"};
    char buf[64];
    int len = exec__msg_encode('D', f, 1, buf, sizeof(buf));
    assert_int_equal(exec__msg_send(sp[0], buf, (size_t)len, &p[1], 1, 1), 0);
    int fds[EXEC_MSG_MAX_FDS], nfds = -1;
    char in[64];
    assert_int_equal(exec__msg_recv(sp[1], in, sizeof(in), fds, &nfds, 1), len);
    assert_int_equal(nfds, 1);
    assert_int_equal(write(fds[0], "x", 1), 1); /* the pipe's write end, passed along */
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    assert_true((fcntl(fds[0], F_GETFD) & FD_CLOEXEC) != 0);
    close(fds[0]);
    assert_int_equal(exec__msg_recv(sp[1], in, sizeof(in), fds, &nfds, 1), -EAGAIN);
    /* a message longer than the buffer is refused whole, its descriptors closed */
    assert_int_equal(exec__msg_send(sp[0], buf, (size_t)len, &p[1], 1, 1), 0);
    assert_int_equal(exec__msg_recv(sp[1], in, 2, fds, &nfds, 1), -EMSGSIZE);
    assert_int_equal(nfds, 0);
    close(p[1]);
    assert_int_equal(read(p[0], &c, 1), 0); /* every write end is closed: ours and the passed copy */
    close(p[0]);
    close(sp[0]);
    assert_int_equal(exec__msg_recv(sp[1], in, sizeof(in), fds, &nfds, 0), 0); /* end of file */
    close(sp[1]);
}

/* ---- the limiter's parsing (in-process: it must fail before touching any limit) ---- */

static int limit_argv(const char *first, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && argc < 31; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    return exec_limit_main(argc, argv);
}

static void limit_rejects_bad_options_before_setting_any(void **state)
{
    (void)state;
    struct rlimit before, after;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &before), 0);
    assert_int_equal(limit_argv("limit", "--nofile", "5", "--bogus", "1", "--", "/bin/true", NULL), 127);
    assert_int_equal(limit_argv("limit", "--nofile", "5", "--as", NULL), 127);
    assert_int_equal(limit_argv("limit", "--nofile", "5", "--as", "12M", "--", "/bin/true", NULL), 127);
    assert_int_equal(limit_argv("limit", "--nofile", "5", "--as", "-1", "--", "/bin/true", NULL), 127);
    assert_int_equal(limit_argv("limit", "--nofile", "5", "--as", "", "--", "/bin/true", NULL), 127);
    assert_int_equal(limit_argv("limit", "--nofile", "5", "--as", "99999999999999999999999", "--", "/bin/true",
                                NULL), 127);
    assert_int_equal(limit_argv("limit", "--nofile", "5", "--nofile", "6", "--", "/bin/true", NULL), 127);
    /* privilege drop and directory fds: uid 0, a lone --uid, fds 0..2, a missing directory */
    assert_int_equal(limit_argv("limit", "--uid", "0", "--gid", "5", "--", "/bin/true", NULL), 127);
    assert_int_equal(limit_argv("limit", "--uid", "64000", "--", "/bin/true", NULL), 127);
    assert_int_equal(limit_argv("limit", "--dir", "relative", "job", "--", "/bin/true", NULL), 127);
    assert_int_equal(limit_argv("limit", "--dir", "/tmp", "../x", "--", "/bin/true", NULL), 127);
    assert_int_equal(limit_argv("limit", "--dir", "/nonexistent/dir", "job", "--", "/bin/true", NULL), 127);
    assert_int_equal(limit_argv("limit", "--nofile", "5", "/bin/true", NULL), 127); /* no "--" */
    assert_int_equal(limit_argv("limit", "--nofile", "5", "--", NULL), 127);        /* no program */
    assert_int_equal(limit_argv("limit", NULL), 127);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &after), 0);
    assert_true(before.rlim_cur == after.rlim_cur && before.rlim_max == after.rlim_max);
}

/* --go-fd: nothing is done before the word; EOF (cancelled meanwhile) exits 126 having done nothing. */
static void limit_waits_for_go(void **state)
{
    (void)state;
    struct rlimit before, after;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &before), 0);
    int p[2];
    char num[16];
    assert_int_equal(pipe(p), 0);
    close(p[1]); /* no word: cancelled */
    snprintf(num, sizeof(num), "%d", p[0]);
    assert_int_equal(limit_argv("limit", "--go-fd", num, "--nofile", "5", "--", "/bin/true", NULL), 126);
    assert_int_equal(fcntl(p[0], F_GETFD), -1); /* the go fd is closed */
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &after), 0);
    assert_true(before.rlim_cur == after.rlim_cur);
    /* with the word it goes on to the rest of the vector (here a bad one: 127) */
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], "g", 1), 1);
    close(p[1]);
    snprintf(num, sizeof(num), "%d", p[0]);
    assert_int_equal(limit_argv("limit", "--go-fd", num, "--bogus", "1", "--", "/bin/true", NULL), 127);
    assert_int_equal(fcntl(p[0], F_GETFD), -1);
    assert_int_equal(limit_argv("limit", "--go-fd", "x", "--", "/bin/true", NULL), 127);
}

/* ---- real runs ---- */

static void run_writes_stdout_and_stderr_files(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    /* the last cat reads stdin: /dev/null, so it ends at once */
    exec_spec_t s = spec_for(f, "echo hello; echo oops >&2; cat /job/input.txt; cat");
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    assert_false(rec.res.refused);
    assert_int_equal(rec.res.exit_code, 0);
    assert_int_equal(rec.res.term_signal, 0);
    assert_string_equal(rec.res.reason, "");
    char *out = slurp(f->out), *err = slurp(f->err);
    assert_string_equal(out, "hello\ninput data\n");
    assert_string_equal(err, "oops\n");
    free(out);
    free(err);
}

static void run_same_file_for_stdout_and_stderr(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_spec_t s = spec_for(f, "echo one; echo two >&2; echo three");
    s.stderr_path = f->out;
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    assert_int_equal(rec.res.exit_code, 0);
    char *out = slurp(f->out);
    assert_string_equal(out, "one\ntwo\nthree\n");
    free(out);
}

static void run_reports_exit_code(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_spec_t s = spec_for(f, "exit 3");
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    assert_false(rec.res.refused);
    assert_int_equal(rec.res.exit_code, 3);
    assert_int_equal(rec.res.term_signal, 0);
    assert_string_equal(rec.res.reason, "exit 3");
}

static void run_reports_signal(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_spec_t s = spec_for(f, "kill -9 $$");
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    assert_false(rec.res.refused);
    assert_int_equal(rec.res.exit_code, 137);
    assert_int_equal(rec.res.term_signal, 9);
    assert_string_equal(rec.res.reason, "killed by signal 9 (SIGKILL)");
}

static void run_sees_env_and_unprivileged_uid(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_spec_t s = spec_for(f, "echo $PREON_TASK $PREON_TASKS $PREON_JOB $PREON_JOB_ID $PREON_JOB_DIR "
                                "$PREON_TASK_DIR $HOME $TMPDIR $LANG; pwd; id -u; id -g; hostname");
    s.task_index = 5;
    s.task_count = 10;
    s.slot = 2;
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    assert_int_equal(rec.res.exit_code, 0);
    char *out = slurp(f->out);
    char expect[128];
    snprintf(expect, sizeof(expect), "5 10 demo abc123 /job /task /task /tmp C.UTF-8\n/task\n%u\n%u\npreon\n",
             UID_BASE + 2, UID_BASE + 2);
    assert_string_equal(out, expect);
    free(out);
}

static void run_task_dir_is_writable_and_owned_by_slot(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_spec_t s = spec_for(f, "echo result > /task/answer && mkdir /task/sub && echo x > sub/y");
    s.slot = 3;
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    assert_int_equal(rec.res.exit_code, 0);
    char p[192];
    snprintf(p, sizeof(p), "%s/answer", f->task_dir);
    char *data = slurp(p);
    assert_non_null(data);
    assert_string_equal(data, "result\n");
    free(data);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_uid, UID_BASE + 3);
    assert_int_equal(st.st_gid, UID_BASE + 3);
    assert_int_equal(stat(f->task_dir, &st), 0);
    assert_int_equal(st.st_uid, UID_BASE + 3);
    snprintf(p, sizeof(p), "%s/sub/y", f->task_dir);
    assert_int_equal(access(p, F_OK), 0);
}

/* The task starts where its files are: relative reads, ./tool from a subdirectory, a file written
 * over an input's name (an output; the published input stays), a deleted input (not an output). */
static void run_starts_in_the_jobs_files(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    char p[256];
    snprintf(p, sizeof(p), "%s/bin", f->job_dir);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/bin/tool", f->job_dir);
    write_file(p, "#!/bin/sh\necho tool $1\n");
    assert_int_equal(chmod(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/data", f->job_dir);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/data/a.csv", f->job_dir);
    write_file(p, "1,2\n");
    assert_int_equal(chmod(p, 0444), 0);
    snprintf(p, sizeof(p), "%s/data/gone.txt", f->job_dir);
    write_file(p, "bye\n");
    exec_spec_t s = spec_for(f, "set -e; pwd; cat input.txt > copy.txt; ./bin/tool x; "
                                "cat data/a.csv > data/b.csv; echo over > input.txt; rm data/gone.txt; "
                                "cat input.txt; [ ! -e data/gone.txt ] && echo gone");
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    assert_int_equal(rec.res.exit_code, 0);
    char *out = slurp(f->out);
    assert_string_equal(out, "/task\ntool x\nover\ngone\n");
    free(out);
    /* Outputs in the task directory; the published files unchanged. */
    snprintf(p, sizeof(p), "%s/copy.txt", f->task_dir);
    out = slurp(p);
    assert_string_equal(out, "input data\n");
    free(out);
    snprintf(p, sizeof(p), "%s/data/b.csv", f->task_dir);
    out = slurp(p);
    assert_string_equal(out, "1,2\n");
    free(out);
    snprintf(p, sizeof(p), "%s/input.txt", f->task_dir);
    out = slurp(p);
    assert_string_equal(out, "over\n");
    free(out);
    snprintf(p, sizeof(p), "%s/input.txt", f->job_dir);
    out = slurp(p);
    assert_string_equal(out, "input data\n");
    free(out);
    snprintf(p, sizeof(p), "%s/data/gone.txt", f->job_dir);
    assert_int_equal(access(p, F_OK), 0);
    /* Which entries are outputs: written ones are, untouched inputs and the deletion are not. */
    int dfd = open(f->task_dir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    assert_false(exec_is_unchanged_input(dfd, "copy.txt"));
    assert_false(exec_is_unchanged_input(dfd, "input.txt"));
    assert_true(exec_is_unchanged_input(dfd, "bin/tool"));
    assert_true(exec_is_unchanged_input(dfd, "data/a.csv"));
    assert_false(exec_is_unchanged_input(dfd, "data/b.csv"));
    struct stat st;
    assert_int_equal(fstatat(dfd, "data/gone.txt", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_false(S_ISREG(st.st_mode)); /* overlayfs's whiteout */
    close(dfd);
}

/* The skeleton made from the spec (as preon does from the manifest) instead of the keeper's walk:
 * the same view. */
static void run_with_a_skeleton_from_the_spec(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    char p[256];
    snprintf(p, sizeof(p), "%s/sub", f->job_dir);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/sub/x.txt", f->job_dir);
    write_file(p, "deep\n");
    const exec_entry_t skel[] = {
        {.path = "sub", .mode = 0755, .dir = true},
        {.path = "input.txt", .size = 11, .mode = 0644},
        {.path = "sub/x.txt", .size = 5, .mode = 0444},
    };
    exec_spec_t s = spec_for(f, "set -e; cat input.txt sub/x.txt; echo new > sub/y; echo over > sub/x.txt; ls -l sub/x.txt | cut -c1-4");
    s.skeleton = skel;
    s.n_skeleton = 3;
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    assert_int_equal(rec.res.exit_code, 0);
    char *out = slurp(f->out);
    assert_string_equal(out, "input data\ndeep\n-rw-\n");
    free(out);
    int dfd = open(f->task_dir, O_RDONLY | O_DIRECTORY);
    assert_true(exec_is_unchanged_input(dfd, "input.txt"));
    assert_false(exec_is_unchanged_input(dfd, "sub/x.txt"));
    assert_false(exec_is_unchanged_input(dfd, "sub/y"));
    close(dfd);
    snprintf(p, sizeof(p), "%s/sub/x.txt", f->job_dir);
    out = slurp(p);
    assert_string_equal(out, "deep\n");
    free(out);
    /* a path out of the task directory is refused, never followed */
    const exec_entry_t bad[] = {{.path = "../escape", .size = 1, .mode = 0644}};
    s.skeleton = bad;
    s.n_skeleton = 1;
    rec_t rec2 = {0};
    run_task(f, f->e, &s, &rec2);
    assert_true(rec2.res.refused);
    assert_non_null(strstr(rec2.res.reason, "preparing the task directory"));
    snprintf(p, sizeof(p), "%s/escape", f->base);
    assert_int_equal(access(p, F_OK), -1);
}

/* A checkpoint to resume from (spec.checkpoint_dir): its files, subdirectories too, are at
 * /task/checkpoint/, the task's own to change; the peer's copy is left as it was; a job input of
 * the same name is replaced by the checkpoint's file; one that cannot be restored is left out. */
static void run_starts_with_its_checkpoint(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    char ck[256], p[300];
    snprintf(ck, sizeof(ck), "%s/ckpt", f->base);
    assert_int_equal(mkdir(ck, 0755), 0);
    snprintf(p, sizeof(p), "%s/step", ck);
    write_file(p, "41\n");
    snprintf(p, sizeof(p), "%s/deep", ck);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/deep/state.bin", ck);
    write_file(p, "abc");
    snprintf(p, sizeof(p), "%s/checkpoint", f->job_dir); /* the job ships a checkpoint/step of its own */
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/checkpoint/step", f->job_dir);
    write_file(p, "0\n");
    const exec_entry_t skel[] = {
        {.path = "checkpoint", .mode = 0755, .dir = true},
        {.path = "checkpoint/step", .size = 2, .mode = 0644},
        {.path = "input.txt", .size = 11, .mode = 0644},
    };
    exec_spec_t s = spec_for(f, "set -e; cat checkpoint/step checkpoint/deep/state.bin; echo; "
                                "echo 42 > checkpoint/step; echo more >> checkpoint/deep/state.bin; id -u");
    s.skeleton = skel;
    s.n_skeleton = 3;
    s.checkpoint_dir = ck;
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    assert_int_equal(rec.res.exit_code, 0);
    char *out = slurp(f->out), expect[64];
    snprintf(expect, sizeof(expect), "41\nabc\n%u\n", UID_BASE + s.slot);
    assert_string_equal(out, expect);
    free(out);
    snprintf(p, sizeof(p), "%s/checkpoint/step", f->task_dir);
    out = slurp(p);
    assert_string_equal(out, "42\n");
    free(out);
    snprintf(p, sizeof(p), "%s/step", ck);
    out = slurp(p);
    assert_string_equal(out, "41\n");
    free(out);
    int dfd = open(f->task_dir, O_RDONLY | O_DIRECTORY);
    assert_false(exec_is_unchanged_input(dfd, "checkpoint/step"));
    close(dfd);
    /* a checkpoint that cannot be restored: the task starts without it (from the beginning),
     * with nothing half-restored in /task/checkpoint/: only the job's own file shows there */
    snprintf(p, sizeof(p), "%s/nothing", f->base);
    s.checkpoint_dir = p;
    s.skeleton = NULL;
    s.n_skeleton = 0;
    s.command = "cat checkpoint/step; ls checkpoint"; /* the job's own checkpoint/step, nothing else */
    files_rm_rf(f->task_dir);
    rec_t rec2 = {0};
    run_task(f, f->e, &s, &rec2);
    assert_false(rec2.res.refused);
    assert_int_equal(rec2.res.exit_code, 0);
    out = slurp(f->out);
    assert_string_equal(out, "0\nstep\n");
    free(out);
}

static void run_cannot_write_outside_task_and_tmp(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    /* Prints only what it managed to do (or to see); the task must report just the /tmp write. */
    exec_spec_t s = spec_for(f, "for p in /job/x /job/input.txt /usr/x /x /etc/x /proc/x /dev/x; do "
                                "  if (echo z > $p) 2>/dev/null; then echo wrote $p; fi; done; "
                                "for p in /root /work /var /home /etc/shadow; do "
                                "  if [ -e $p ]; then echo sees $p; fi; done; "
                                "echo t > /tmp/ok && echo tmp-ok");
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    assert_int_equal(rec.res.exit_code, 0);
    char *out = slurp(f->out);
    assert_string_equal(out, "tmp-ok\n");
    free(out);
    char p[192];
    snprintf(p, sizeof(p), "%s/x", f->job_dir);
    assert_int_equal(access(p, F_OK), -1);
    snprintf(p, sizeof(p), "%s/input.txt", f->job_dir);
    char *in = slurp(p);
    assert_string_equal(in, "input data\n");
    free(in);
    assert_int_equal(access("/usr/x", F_OK), -1);
}

static void run_tmpfs_is_capped_by_the_disk_limit(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    /* Each file is under the 1 MiB RLIMIT_FSIZE; two of them do not fit the 1 MiB tmpfs. */
    exec_spec_t s = spec_for(f, "for d in /tmp /dev/shm; do "
                                "  head -c 700000 /dev/zero > $d/a || echo $d-a-failed; "
                                "  head -c 700000 /dev/zero > $d/b 2>/dev/null || echo $d-full; done");
    s.disk_bytes = 1 << 20;
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    assert_int_equal(rec.res.exit_code, 0);
    char *out = slurp(f->out);
    assert_string_equal(out, "/tmp-full\n/dev/shm-full\n");
    free(out);
}

/* The listener for the network checks: counts the connections it accepts. */
typedef struct listener {
    uv_tcp_t server;
    uv_tcp_t conn[4];
    int accepted;
    int open; /* handles not closed yet: the listener lives on the test's stack */
} listener_t;

static void on_connection(uv_stream_t *server, int status)
{
    listener_t *l = server->data;
    if (status != 0 || l->accepted >= 4)
        return;
    uv_tcp_init(server->loop, &l->conn[l->accepted]);
    assert_int_equal(uv_accept(server, (uv_stream_t *)&l->conn[l->accepted]), 0);
    l->accepted++;
}

static int listen_loopback(fixture_t *f, listener_t *l)
{
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(&f->loop, &l->server);
    l->server.data = l;
    assert_int_equal(uv_tcp_bind(&l->server, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&l->server, 8, on_connection), 0);
    struct sockaddr_in bound;
    int len = sizeof(bound);
    assert_int_equal(uv_tcp_getsockname(&l->server, (struct sockaddr *)&bound, &len), 0);
    return ntohs(bound.sin_port);
}

static void on_listener_closed(uv_handle_t *h)
{
    listener_t *l = h->data;
    l->open--;
}

/* Closes the listener's handles and runs the loop until they are closed: the listener is on the
 * caller's stack, which the loop must not touch once the test has returned (the teardown's loop
 * run finished the closes in freed stack: libuv's "uv__finish_close" assertion under gcc's TSan). */
static void listener_close(listener_t *l)
{
    l->server.data = l;
    uv_close((uv_handle_t *)&l->server, on_listener_closed);
    l->open = 1;
    for (int i = 0; i < l->accepted; i++) {
        l->conn[i].data = l;
        uv_close((uv_handle_t *)&l->conn[i], on_listener_closed);
        l->open++;
    }
    uv_loop_t *loop = l->server.loop;
    while (l->open > 0)
        uv_run(loop, UV_RUN_ONCE);
}

static void run_has_no_network_unless_asked_and_allowed(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    listener_t l = {0};
    int port = listen_loopback(f, &l);
    char cmd[256];
    /* bash for /dev/tcp; dash has no socket of its own. */
    snprintf(cmd, sizeof(cmd), "bash -c 'echo hi > /dev/tcp/127.0.0.1/%d' && echo connected", port);

    exec_spec_t s = spec_for(f, cmd);
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    assert_int_not_equal(rec.res.exit_code, 0);
    char *out = slurp(f->out);
    assert_string_equal(out, "");
    free(out);
    /* Let any connection that did get through be accepted before counting. */
    for (int i = 0; i < 10; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(l.accepted, 0);

    /* The control: the same check does see the listener when the network is shared. */
    s.network = true;
    rec_t rec2 = {0};
    run_task(f, f->e, &s, &rec2);
    assert_int_equal(rec2.res.exit_code, 0);
    out = slurp(f->out);
    assert_string_equal(out, "connected\n");
    free(out);
    while (l.accepted < 1 && !f->watchdog_fired)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(l.accepted, 1);
    listener_close(&l);
}

static void spawn_refuses_network_when_not_allowed(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_opts_t o = f->opts;
    o.allow_network = false;
    exec_t *e = NULL;
    assert_int_equal(exec_new(&f->loop, &o, &e), 0);
    exec_spec_t s = spec_for(f, "touch /task/ran");
    s.network = true;
    rec_t rec = {0};
    run_task(f, e, &s, &rec);
    assert_true(rec.res.refused);
    assert_int_equal(rec.res.exit_code, -1);
    assert_string_equal(rec.res.reason, "job asks for network; this peer does not allow it");
    char p[192];
    snprintf(p, sizeof(p), "%s/ran", f->task_dir);
    assert_int_equal(access(p, F_OK), -1);
    int closed = 0;
    exec_close(e, closed_cb, &closed);
    assert_int_equal(closed, 1); /* nothing was in flight */
}

static void run_times_out(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_spec_t s = spec_for(f, "sleep 30 & sleep 30");
    s.timeout_ms = 500;
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    assert_true(rec.res.timed_out);
    assert_false(rec.res.refused);
    assert_false(rec.res.cancelled);
    /* the notice first: SIGTERM to the command's processes, which die of it (no SIGKILL needed) */
    assert_int_equal(rec.res.exit_code, 128 + 15);
    assert_string_equal(rec.res.reason, "timed out after 0.5 s");
    assert_true(rec.res.elapsed_ms >= 500 && rec.res.elapsed_ms < 5000);
    assert_int_equal(count_task_procs(UID_BASE + 1), 0); /* both sleeps are gone, and reaped */
}

/* Kills that land while bwrap is still building the sandbox must not leave a stray pid 1. */
static void run_kill_during_setup_leaves_nothing(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_spec_t s = spec_for(f, "sleep 30");
    for (int i = 0; i < 20; i++) {
        s.timeout_ms = 1 + (uint64_t)(i % 4);
        rec_t rec = {0};
        run_task(f, f->e, &s, &rec);
        assert_true(rec.res.timed_out);
        assert_int_equal(count_task_procs(UID_BASE + 1), 0);
    }
}

static void run_background_processes_die_with_the_task(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_spec_t s = spec_for(f, "sleep 30 & sleep 30 & echo started");
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    assert_int_equal(rec.res.exit_code, 0);
    assert_true(rec.res.elapsed_ms < 5000);
    assert_int_equal(count_task_procs(UID_BASE + 1), 0);
}

static void run_memory_limit_fails_a_big_allocation(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    /* mawk doubles a string to 256 MiB: it needs 384 MiB at the last step. */
    exec_spec_t s = spec_for(f, "awk 'BEGIN{s=\"x\"; while (length(s) < 200000000) s = s s; print length(s)}'");
    s.memory_bytes = 64ull << 20;
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    assert_false(rec.res.refused);
    assert_int_not_equal(rec.res.exit_code, 0);
    assert_string_equal(rec.res.limit, "memory");
    assert_non_null(strstr(rec.res.reason, "stopped by the memory limit"));
    assert_true(rec.res.memory_peak >= (48ull << 20) && rec.res.memory_peak <= (64ull << 20));

    s.memory_bytes = 1ull << 30; /* the control: the same program fits in 1 GiB */
    rec_t rec2 = {0};
    run_task(f, f->e, &s, &rec2);
    assert_int_equal(rec2.res.exit_code, 0);
    char *out = slurp(f->out);
    assert_string_equal(out, "268435456\n");
    free(out);
}

/* The memory limit holds for the task in all: four processes that each fit alone, together not. */
static void run_memory_limit_counts_every_process(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    /* Each mawk holds a 16 MiB string (about 24 MiB at its peak), then waits; only the memory
     * limit can end this task before its time-out. */
    const char *hog = "awk 'BEGIN{s=\"x\"; while (length(s) < 16000000) s = s s; system(\"sleep 600\")}'";
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "for i in 1 2 3 4; do %s & done; wait", hog);
    exec_spec_t s = spec_for(f, cmd);
    s.memory_bytes = 64ull << 20;
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    assert_false(rec.res.timed_out);
    assert_string_equal(rec.res.limit, "memory");
    assert_int_not_equal(rec.res.exit_code, 0);
    assert_int_equal(count_task_procs(UID_BASE + 1), 0);

    snprintf(cmd, sizeof(cmd), "awk 'BEGIN{s=\"x\"; while (length(s) < 16000000) s = s s; print length(s)}'");
    exec_spec_t one = spec_for(f, cmd); /* the control: one of them alone fits */
    one.memory_bytes = 64ull << 20;
    rec_t rec2 = {0};
    run_task(f, f->e, &one, &rec2);
    assert_int_equal(rec2.res.exit_code, 0);
    assert_string_equal(rec2.res.limit, "");
}

/* What a task keeps in /tmp and /dev/shm is memory: each tmpfs alone is under its cap, both together
 * are over the task's memory. */
static void run_memory_limit_counts_the_tmpfs(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_spec_t s = spec_for(f, "head -c 40000000 /dev/zero > /tmp/a && head -c 40000000 /dev/zero > /dev/shm/b "
                                "&& echo kept");
    s.memory_bytes = 64ull << 20;
    s.disk_bytes = 1ull << 30;
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    assert_string_equal(rec.res.limit, "memory");
    char *out = slurp(f->out);
    assert_string_equal(out, "");
    free(out);

    s.memory_bytes = 160ull << 20; /* the control: room for both */
    rec_t rec2 = {0};
    run_task(f, f->e, &s, &rec2);
    assert_int_equal(rec2.res.exit_code, 0);
    out = slurp(f->out);
    assert_string_equal(out, "kept\n");
    free(out);
}

/* A real fork bomb: stopped at the processes limit (the refused forks are counted), and nothing of
 * it is left on the machine. */
static void run_fork_bomb_is_contained(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    /* The shell stays a second: `wait` alone ended the task as soon as its own two children had
     * forked, sometimes before the bomb reached the limit (no refused fork: a flaky test). */
    exec_spec_t s = spec_for(f, "b() { b | b & }; b; sleep 1");
    s.processes = 16;
    s.timeout_ms = 20000;
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    /* Every fork past the limit fails, so the bomb fizzles out by itself, long before its time-out. */
    assert_false(rec.res.timed_out);
    assert_true(rec.res.forks_refused > 0);
    assert_int_equal(count_task_procs(UID_BASE + 1), 0);
}

/* A task that ignores SIGTERM and leaves children behind in new sessions outlives nothing. */
static void run_task_ignoring_sigterm_with_detached_children_is_ended(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_spec_t s = spec_for(f, "trap '' TERM; (trap '' TERM; setsid sleep 600 &); nohup sleep 600 >/dev/null 2>&1 & "
                                "setsid sh -c 'trap \"\" TERM; sleep 600' & sleep 600");
    s.timeout_ms = 700;
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    assert_true(rec.res.timed_out);
    assert_int_equal(count_task_procs(UID_BASE + 1), 0);
}

/* The task's cgroup is gone once its callback has fired, whatever the task did. */
static void run_leaves_no_cgroup(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_spec_t s = spec_for(f, "sleep 600 & echo x");
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    assert_int_equal(rec.res.exit_code, 0);
    char path[256];
    snprintf(path, sizeof(path), "/proc/self/cgroup");
    char *self = slurp(path), *mine = NULL;
    assert_non_null(self);
    FILE *mi = fopen("/proc/self/mountinfo", "r");
    assert_non_null(mi);
    char *text = calloc(1, 1 << 16);
    size_t n = fread(text, 1, (1 << 16) - 1, mi);
    text[n] = '\0';
    fclose(mi);
    exec_cg_mounts_t m;
    assert_int_equal(exec__cg_parse_mounts(text, &m), 0);
    const char *mnt = m.v1[EXEC_CG_PIDS] ? m.v1[EXEC_CG_PIDS] : m.v2;
    assert_non_null(mnt);
    assert_int_equal(exec__cg_parse_self(self, m.v1[EXEC_CG_PIDS] ? "pids" : NULL, &mine), 0);
    snprintf(path, sizeof(path), "%s%s/preon-%ld", mnt, strcmp(mine, "/") ? mine : "", (long)getpid());
    DIR *d = opendir(path); /* the peer's own is there while the executor is open; below it, at most */
    assert_non_null(d);   /* the cgroup of the slot's warm sandbox */
    struct dirent *de;
    int tasks = 0;
    while ((de = readdir(d)) != NULL)
        tasks += de->d_type == DT_DIR && de->d_name[0] != '.';
    closedir(d);
    assert_true(tasks <= 1);
    int closed = 0; /* closed, the executor leaves no cgroup at all */
    exec_close(f->e, closed_cb, &closed);
    f->e = NULL;
    run_until_closed(f, &closed);
    assert_int_equal(access(path, F_OK), -1);
    exec__cg_mounts_free(&m);
    free(mine);
    free(self);
    free(text);
}

static void run_minimum_memory_still_runs_a_shell(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_spec_t s = spec_for(f, "echo small; ls /job");
    s.memory_bytes = EXEC_MIN_MEMORY; /* bwrap and sh must fit in the smallest limit we accept */
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    assert_false(rec.res.refused);
    assert_int_equal(rec.res.exit_code, 0);
    char *out = slurp(f->out);
    assert_string_equal(out, "small\ninput.txt\n");
    free(out);
}

static void run_process_limit_stops_a_fork_bomb(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_spec_t s = spec_for(f, "for i in $(seq 50); do sleep 1 & done; wait");
    s.processes = 10;
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    assert_false(rec.res.refused);
    assert_int_not_equal(rec.res.exit_code, 0);
    char *err = slurp(f->err);
    assert_non_null(strstr(err, "fork"));
    free(err);
    assert_string_equal(rec.res.limit, "processes"); /* it failed, and the limit says why */
    assert_non_null(strstr(rec.res.reason, "the processes limit (processes = 10) refused"));

    s.processes = 64; /* the control: 50 sleeps fit */
    rec_t rec2 = {0};
    run_task(f, f->e, &s, &rec2);
    assert_int_equal(rec2.res.exit_code, 0);
}

static void run_single_process_still_runs_the_command(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_spec_t s = spec_for(f, "echo alone");
    s.processes = 1; /* bwrap's own two processes are not the job's */
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    assert_int_equal(rec.res.exit_code, 0);
    char *out = slurp(f->out);
    assert_string_equal(out, "alone\n");
    free(out);
}

static void run_disk_limit_caps_a_file(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_spec_t s = spec_for(f, "head -c 2097152 /dev/zero > /task/big");
    s.disk_bytes = 1 << 20;
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    assert_int_not_equal(rec.res.exit_code, 0);
    char p[192];
    snprintf(p, sizeof(p), "%s/big", f->task_dir);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_true(st.st_size <= (1 << 20));
}

typedef struct cancel_ctx {
    uv_timer_t timer;
    exec_task_t *t;
} cancel_ctx_t;

static void on_cancel_timer(uv_timer_t *timer)
{
    cancel_ctx_t *c = timer->data;
    exec_task_cancel(c->t);
    uv_close((uv_handle_t *)timer, NULL);
}

static void run_cancel_kills_the_sandbox(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_spec_t s = spec_for(f, "touch /task/started; sleep 30");
    rec_t rec = {.f = f};
    cancel_ctx_t c = {0};
    assert_int_equal(exec_task_spawn(f->e, &s, on_done, &rec, &c.t), 0);
    assert_non_null(c.t);
    /* cancelled once it runs (it said so in /task): no event tells it, so a bounded poll (a fixed
     * 300 ms was too short for a cold sandbox under make asan on a busy machine) */
    char started[192];
    snprintf(started, sizeof(started), "%s/started", f->task_dir);
    uint64_t t0 = uv_hrtime();
    while (access(started, F_OK) != 0 && rec.calls == 0 && uv_hrtime() - t0 < 20000000000ull)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(rec.calls, 0);
    uv_timer_init(&f->loop, &c.timer);
    c.timer.data = &c;
    uv_timer_start(&c.timer, on_cancel_timer, 0, 0);
    run_until(f, 1);
    assert_true(rec.res.cancelled);
    assert_false(rec.res.timed_out);
    assert_false(rec.res.refused);
    assert_string_equal(rec.res.reason, "cancelled");
    assert_int_equal(rec.res.exit_code, 137);
    assert_true(rec.res.elapsed_ms < 5000);
    char p[192];
    snprintf(p, sizeof(p), "%s/started", f->task_dir);
    assert_int_equal(access(p, F_OK), 0); /* it did run before the cancel */
    assert_int_equal(count_task_procs(UID_BASE + 1), 0);
}

static void run_cancel_before_start_never_runs(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_spec_t s = spec_for(f, "touch /task/ran");
    rec_t rec = {.f = f};
    exec_task_t *t = NULL;
    assert_int_equal(exec_task_spawn(f->e, &s, on_done, &rec, &t), 0);
    exec_task_cancel(t);
    assert_int_equal(rec.calls, 0);
    run_until(f, 1);
    assert_true(rec.res.cancelled);
    assert_int_equal(rec.res.exit_code, -1);
    assert_string_equal(rec.res.reason, "cancelled before it started");
    char p[192];
    snprintf(p, sizeof(p), "%s/ran", f->task_dir);
    assert_int_equal(access(p, F_OK), -1);
}

static void spawn_refuses_missing_bwrap(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_opts_t o = f->opts;
    o.bwrap = "/nonexistent/bwrap";
    exec_t *e = NULL;
    assert_int_equal(exec_new(&f->loop, &o, &e), 0);
    exec_spec_t s = spec_for(f, "touch /task/ran");
    rec_t rec = {0};
    run_task(f, e, &s, &rec); /* checks the callback came after exec_task_spawn returned */
    assert_true(rec.res.refused);
    assert_int_equal(rec.res.exit_code, -1);
    assert_string_equal(rec.res.reason, "bwrap /nonexistent/bwrap: No such file or directory");
    exec_close(e, NULL, NULL);
}

static void spawn_refuses_missing_limiter(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_opts_t o = f->opts;
    o.limiter = "/nonexistent/preon";
    exec_t *e = NULL;
    assert_int_equal(exec_new(&f->loop, &o, &e), 0);
    exec_spec_t s = spec_for(f, "touch /task/ran");
    rec_t rec = {0};
    run_task(f, e, &s, &rec);
    assert_true(rec.res.refused);
    char expect[128];
    snprintf(expect, sizeof(expect), "cannot start /nonexistent/preon as uid %u: no such file", UID_BASE + 1);
    if (!strstr(rec.res.reason, expect))
        fail_msg("reason '%s'", rec.res.reason);
    exec_close(e, NULL, NULL);
}

static void spawn_refuses_missing_dirs_and_bad_specs(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    char missing[192], made[192];
    snprintf(missing, sizeof(missing), "%s/nope/deeper", f->base); /* its parent is missing too */
    snprintf(made, sizeof(made), "%s/new-task", f->base);

    /* A missing task directory whose parent exists is made (in the thread pool) and the task runs. */
    exec_spec_t s = spec_for(f, "touch ran");
    s.task_dir = made;
    rec_t rec0 = {0};
    run_task(f, f->e, &s, &rec0);
    assert_int_equal(rec0.res.exit_code, 0);
    char p[256];
    snprintf(p, sizeof(p), "%s/ran", made);
    assert_int_equal(access(p, F_OK), 0);

    s = spec_for(f, "true");
    s.task_dir = missing;
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    assert_true(rec.res.refused);
    assert_non_null(strstr(rec.res.reason, "task directory"));
    assert_non_null(strstr(rec.res.reason, "No such file or directory"));

    s = spec_for(f, "true");
    s.job_dir = missing;
    rec_t rec2 = {0};
    run_task(f, f->e, &s, &rec2);
    assert_true(rec2.res.refused);
    assert_non_null(strstr(rec2.res.reason, "job directory"));

    s = spec_for(f, "true");
    s.memory_bytes = 1 << 20; /* a job description may ask for this: refused with a reason */
    rec_t rec3 = {0};
    run_task(f, f->e, &s, &rec3);
    assert_true(rec3.res.refused);
    assert_non_null(strstr(rec3.res.reason, "minimum of 16 MiB"));

    assert_int_equal(exec_task_spawn(f->e, NULL, on_done, &rec, NULL), -EINVAL);
    assert_int_equal(exec_task_spawn(f->e, &s, NULL, &rec, NULL), -EINVAL);
    assert_int_equal(exec_task_spawn(NULL, &s, on_done, &rec, NULL), -EINVAL);
}

static void run_refuses_when_bwrap_cannot_build_the_sandbox(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    /* A bwrap that fails the way a real one does when a mount is refused: it never reports the
     * sandbox up on --json-status-fd, so the task must count as refused, not as a task exit. */
    char fake[192];
    snprintf(fake, sizeof(fake), "%s/fakebwrap", f->base);
    FILE *fp = fopen(fake, "w");
    assert_non_null(fp);
    fputs("#!/bin/sh\necho 'bwrap: Can'\\''t mount proc on /newroot/proc: Permission denied' >&2\nexit 1\n", fp);
    fclose(fp);
    assert_int_equal(chmod(fake, 0755), 0);
    assert_int_equal(chmod(f->base, 0755), 0);
    exec_opts_t o = f->opts;
    o.bwrap = fake;
    exec_t *e = NULL;
    assert_int_equal(exec_new(&f->loop, &o, &e), 0);
    exec_spec_t s = spec_for(f, "touch /task/ran");
    rec_t rec = {0};
    run_task(f, e, &s, &rec);
    assert_true(rec.res.refused);
    assert_int_equal(rec.res.exit_code, -1);
    assert_non_null(strstr(rec.res.reason, "the sandbox could not be built: bwrap: "));
    assert_non_null(strstr(rec.res.reason, "Permission denied"));
    char p[192];
    snprintf(p, sizeof(p), "%s/ran", f->task_dir);
    assert_int_equal(access(p, F_OK), -1);
    exec_close(e, NULL, NULL);
}

static void run_private_dirs_are_reachable(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    /* The slot uid cannot traverse this 0700 directory; the limiter's staging makes it reachable. */
    char priv[160], job[192], p[224];
    snprintf(priv, sizeof(priv), "%s/private", f->base);
    snprintf(job, sizeof(job), "%s/job", priv);
    assert_int_equal(mkdir(priv, 0700), 0);
    assert_int_equal(mkdir(job, 0755), 0);
    snprintf(p, sizeof(p), "%s/in.txt", job);
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    fputs("secret input\n", fp);
    fclose(fp);
    exec_spec_t s = spec_for(f, "cp /job/in.txt /task/copy");
    s.job_dir = job;
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    assert_false(rec.res.refused);
    assert_int_equal(rec.res.exit_code, 0);
    snprintf(p, sizeof(p), "%s/copy", f->task_dir);
    assert_int_equal(access(p, F_OK), 0);
}

static void run_four_slots_at_once(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    char dirs[SLOTS][192], scr[SLOTS][200], outs[SLOTS][192], errs[SLOTS][192];
    rec_t rec[SLOTS] = {0};
    for (unsigned i = 0; i < SLOTS; i++) {
        snprintf(dirs[i], sizeof(dirs[i]), "%s/task%u", f->base, i);
        snprintf(outs[i], sizeof(outs[i]), "%s/out%u", f->base, i);
        snprintf(errs[i], sizeof(errs[i]), "%s/err%u", f->base, i);
        snprintf(scr[i], sizeof(scr[i]), "%s.ovl", dirs[i]);
        assert_int_equal(mkdir(dirs[i], 0700), 0);
        assert_int_equal(mkdir(scr[i], 0700), 0);
        exec_spec_t s = spec_for(f, "sleep 0.2; echo $PREON_TASK $(id -u) > /task/who; cat /task/who");
        s.task_dir = dirs[i];
        s.scratch_dir = scr[i];
        s.stdout_path = outs[i];
        s.stderr_path = errs[i];
        s.task_index = i;
        s.task_count = SLOTS;
        s.slot = i;
        rec[i].f = f;
        assert_int_equal(exec_task_spawn(f->e, &s, on_done, &rec[i], NULL), 0);
    }
    run_until(f, SLOTS);
    for (unsigned i = 0; i < SLOTS; i++) {
        assert_int_equal(rec[i].calls, 1);
        assert_int_equal(rec[i].res.exit_code, 0);
        char expect[64];
        snprintf(expect, sizeof(expect), "%u %u\n", i, UID_BASE + i);
        char *out = slurp(outs[i]);
        assert_string_equal(out, expect);
        free(out);
    }
}

static void close_cancels_running_tasks_then_calls_back(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_spec_t s = spec_for(f, "sleep 30");
    rec_t rec = {.f = f};
    assert_int_equal(exec_task_spawn(f->e, &s, on_done, &rec, NULL), 0);
    /* Let it get past PREP into RUNNING: wait until the sandbox has written its status. */
    exec_spec_t s2 = spec_for(f, "true");
    char dir2[192], scr2[192], out2[192];
    snprintf(dir2, sizeof(dir2), "%s/t2", f->base);
    snprintf(scr2, sizeof(scr2), "%s/t2.ovl", f->base);
    snprintf(out2, sizeof(out2), "%s/o2", f->base);
    assert_int_equal(mkdir(dir2, 0700), 0);
    assert_int_equal(mkdir(scr2, 0700), 0);
    s2.task_dir = dir2;
    s2.scratch_dir = scr2;
    s2.stdout_path = s2.stderr_path = out2;
    s2.slot = 2;
    rec_t rec2 = {.f = f};
    assert_int_equal(exec_task_spawn(f->e, &s2, on_done, &rec2, NULL), 0);
    run_until(f, 1); /* the short one is done; the long one is running */
    assert_int_equal(rec2.calls, 1);
    assert_int_equal(rec.calls, 0);
    int closed = 0;
    exec_t *e = f->e;
    exec_close(e, closed_cb, &closed);
    f->e = NULL;
    assert_int_equal(closed, 0);
    assert_int_equal(exec_task_spawn(e, &s2, on_done, &rec2, NULL), -ECANCELED); /* closing */
    assert_int_equal(rec.calls, 0);
    run_until(f, 2);
    assert_int_equal(rec.calls, 1);
    assert_true(rec.res.cancelled);
    while (closed == 0 && !f->watchdog_fired)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(closed, 1);
}

/* ---- warm sandboxes: the next task of a job reuses its slot's sandbox, fresh ---- */

/* A second run of the fixture's job, with directories and files of its own (n: 2, 3...). */
static exec_spec_t spec_run(fixture_t *f, const char *command, int n, char *bufs, size_t cap)
{
    exec_spec_t s = spec_for(f, command);
    char *dir = bufs, *scr = bufs + cap, *out = bufs + 2 * cap;
    snprintf(dir, cap, "%s/task%d", f->base, n);
    snprintf(scr, cap, "%s/task%d.ovl", f->base, n);
    snprintf(out, cap, "%s/out%d", f->base, n);
    s.task_dir = dir;
    s.scratch_dir = scr;
    s.stdout_path = s.stderr_path = out;
    return s;
}

/* What a task leaves behind is gone before the next one starts in the same sandbox: processes (a
 * detached one too), /tmp and /dev/shm, System V IPC, its /task; and the next one runs warm. */
static void run_warm_sandbox_runs_the_next_task_fresh(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_spec_t s1 = spec_for(f, "echo a > /tmp/left; echo b > /dev/shm/left; echo c > left.txt; "
                                 "ipcmk -M 4096 >/dev/null && ipcmk -Q >/dev/null && "
                                 "(setsid sleep 600 </dev/null >/dev/null 2>&1 &); echo first");
    rec_t rec1 = {0};
    run_task(f, f->e, &s1, &rec1);
    assert_int_equal(rec1.res.exit_code, 0);
    assert_false(rec1.res.warm);
    assert_true(exec_slot_warm(f->e, 1, "abc123"));
    assert_false(exec_slot_warm(f->e, 1, "def456"));
    assert_false(exec_slot_warm(f->e, 2, "abc123"));
    assert_int_equal(count_task_procs(UID_BASE + 1), 0); /* the detached sleep is gone already */
    char bufs[3 * 192];
    exec_spec_t s2 = spec_run(f, "ls -A /tmp /dev/shm; ls left.txt 2>&1; ipcs -m -q | grep -c '^0x' ; "
                                 "for p in /proc/[0-9]*; do cat $p/comm; done | grep -c sleep; echo second",
                              2, bufs, 192);
    rec_t rec2 = {0};
    run_task(f, f->e, &s2, &rec2);
    assert_int_equal(rec2.res.exit_code, 0);
    assert_true(rec2.res.warm);
    char *out = slurp(s2.stdout_path);
    assert_non_null(out);
    assert_string_equal(out, "/dev/shm:\n\n/tmp:\nls: cannot access 'left.txt': No such file or directory\n0\n0\nsecond\n");
    free(out);
    uint64_t warm, cold;
    unsigned live;
    exec_counts(f->e, &warm, &cold, &live);
    assert_int_equal(live, 1);
    assert_int_equal(warm, 1);
    assert_int_equal(cold, 1);
}

/* A task of another job (or the same job with other limits) never runs in a sandbox of this one:
 * it gets a new sandbox, and the slot's old one ends first. */
static void run_tasks_of_another_job_get_their_own_sandbox(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_spec_t s1 = spec_for(f, "echo one");
    rec_t rec1 = {0};
    run_task(f, f->e, &s1, &rec1);
    assert_true(exec_slot_warm(f->e, 1, "abc123"));
    char bufs[3 * 192];
    exec_spec_t s2 = spec_run(f, "echo two", 2, bufs, 192);
    s2.job_id = "def456";
    rec_t rec2 = {0};
    run_task(f, f->e, &s2, &rec2);
    assert_int_equal(rec2.res.exit_code, 0);
    assert_false(rec2.res.warm);
    assert_false(exec_slot_warm(f->e, 1, "abc123"));
    assert_true(exec_slot_warm(f->e, 1, "def456"));
    char bufs3[3 * 192];
    exec_spec_t s3 = spec_run(f, "echo three", 3, bufs3, 192);
    s3.job_id = "def456";
    s3.memory_bytes = 256ull << 20; /* same job, other limits */
    rec_t rec3 = {0};
    run_task(f, f->e, &s3, &rec3);
    assert_int_equal(rec3.res.exit_code, 0);
    assert_false(rec3.res.warm);
    uint64_t warm, cold;
    unsigned live;
    exec_counts(f->e, &warm, &cold, &live);
    assert_int_equal(live, 1);
    assert_int_equal(warm, 0);
    assert_int_equal(cold, 3);
}

/* Each task's own figures, not the sandbox's: the peak memory and the refused forks of a task that
 * follows a greedy one in the same sandbox are its own. */
static void run_warm_task_is_measured_alone(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_spec_t s1 = spec_for(f, "awk 'BEGIN{s=\"x\"; while (length(s) < 32000000) s = s s; print length(s)}'; "
                                 "b() { b | b & }; b; sleep 1");
    s1.processes = 16;
    rec_t rec1 = {0};
    run_task(f, f->e, &s1, &rec1);
    assert_true(rec1.res.memory_peak > (32u << 20));
    assert_true(rec1.res.forks_refused > 0);
    char bufs[3 * 192];
    exec_spec_t s2 = spec_run(f, "true", 2, bufs, 192);
    s2.processes = 16;
    rec_t rec2 = {0};
    run_task(f, f->e, &s2, &rec2);
    assert_true(rec2.res.warm);
    assert_int_equal(rec2.res.exit_code, 0);
    assert_int_equal(rec2.res.forks_refused, 0);
    assert_true(rec2.res.memory_peak < (16u << 20));
}

/* A sandbox ended by a cancel is not reused; one whose task timed out and ended in its grace is. */
static void run_a_cancelled_sandbox_is_not_reused(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_spec_t s1 = spec_for(f, "sleep 600");
    s1.timeout_ms = 300;
    rec_t rec1 = {0};
    run_task(f, f->e, &s1, &rec1);
    assert_true(rec1.res.timed_out);
    assert_true(exec_slot_warm(f->e, 1, "abc123")); /* sleep died of its SIGTERM: the sandbox is clean */
    char bufs[3 * 192];
    exec_spec_t s2 = spec_run(f, "sleep 600", 2, bufs, 192);
    rec_t rec2 = {.f = f};
    exec_task_t *t2 = NULL;
    assert_int_equal(exec_task_spawn(f->e, &s2, on_done, &rec2, &t2), 0);
    uint64_t t0 = uv_hrtime(); /* no event says it runs: a bounded poll */
    while (count_task_procs(UID_BASE + 1) == 0 && rec2.calls == 0 && uv_hrtime() - t0 < 20000000000ull)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    if (rec2.calls)
        fprintf(stderr, "task 2 ended early: exit %d refused %d cancelled %d warm %d: %s\n", rec2.res.exit_code,
                rec2.res.refused, rec2.res.cancelled, rec2.res.warm, rec2.res.reason);
    assert_int_equal(rec2.calls, 0);
    assert_true(count_task_procs(UID_BASE + 1) >= 1);
    exec_task_cancel(t2);
    while (rec2.calls == 0 && !f->watchdog_fired)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_false(f->watchdog_fired);
    assert_true(rec2.res.cancelled);
    assert_true(rec2.res.warm);
    assert_false(exec_slot_warm(f->e, 1, "abc123"));
    assert_true(exec_slot_empty(f->e, 1));
    char bufs3[3 * 192];
    exec_spec_t s3 = spec_run(f, "echo after", 3, bufs3, 192);
    rec_t rec3 = {0};
    run_task(f, f->e, &s3, &rec3);
    assert_int_equal(rec3.res.exit_code, 0);
    assert_false(rec3.res.warm);
}

/* A task its sandbox cannot start (here: its overlay cannot be mounted, the work directory being
 * on another filesystem) is refused with the keeper's reason, and that sandbox is not used again. */
static void run_a_task_the_sandbox_cannot_start_is_refused(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_spec_t s1 = spec_for(f, "echo one");
    rec_t rec1 = {0};
    run_task(f, f->e, &s1, &rec1);
    assert_int_equal(rec1.res.exit_code, 0);
    char bufs[3 * 192], shm[64];
    exec_spec_t s2 = spec_run(f, "echo two", 2, bufs, 192);
    snprintf(shm, sizeof(shm), "/dev/shm/test_exec.%d.ovl", (int)getpid());
    s2.scratch_dir = shm;
    rec_t rec2 = {0};
    run_task(f, f->e, &s2, &rec2);
    rmdir(shm);
    assert_true(rec2.res.refused);
    assert_non_null(strstr(rec2.res.reason, "cannot mount the task's overlay"));
    assert_false(exec_slot_warm(f->e, 1, "abc123"));
    char bufs3[3 * 192];
    exec_spec_t s3 = spec_run(f, "echo three", 3, bufs3, 192);
    rec_t rec3 = {0};
    run_task(f, f->e, &s3, &rec3);
    assert_int_equal(rec3.res.exit_code, 0);
    assert_false(rec3.res.warm);
}

/* A warm sandbox with no task ends by itself after EXEC_WARM_IDLE_MS. */
static void run_an_idle_sandbox_ends_by_itself(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_spec_t s = spec_for(f, "true");
    rec_t rec = {0};
    run_task(f, f->e, &s, &rec);
    assert_false(exec_slot_empty(f->e, 1));
    uint64_t t0 = uv_now(&f->loop);
    while (!exec_slot_empty(f->e, 1) && !f->watchdog_fired)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_false(f->watchdog_fired);
    assert_true(uv_now(&f->loop) - t0 >= EXEC_WARM_IDLE_MS - 50);
    assert_int_equal(count_uid_procs(UID_BASE + 1), 0);
}

/* ---- the disk limit in all (exec/quota.c) ---- */

/* An executor whose run directories are on its own btrfs with a quota each; skips where this
 * machine cannot (no btrfs or loop devices). */
static exec_t *quota_exec(fixture_t *f, char *work, size_t cap)
{
    snprintf(work, cap, "%s/work", f->base);
    assert_int_equal(mkdir(work, 0755), 0);
    exec_opts_t o = f->opts;
    o.work_dir = work;
    o.work_size = 512ull << 20;
    exec_t *e = NULL;
    assert_int_equal(exec_new(&f->loop, &o, &e), 0);
    if (exec_disk_quota_missing(e)) {
        fprintf(stderr, "no disk quota here: %s\n", exec_disk_quota_missing(e));
        int closed = 0;
        exec_close(e, closed_cb, &closed);
        skip();
    }
    return e;
}

/* A run's spec with everything in its run directory under work (its paths in p). */
typedef struct run_paths {
    char run[192], dir[200], scr[200], out[200];
} run_paths_t;

static exec_spec_t spec_in_run(fixture_t *f, const char *work, const char *command, int n, run_paths_t *p)
{
    exec_spec_t s = spec_for(f, command);
    snprintf(p->run, sizeof(p->run), "%s/run%d", work, n);
    snprintf(p->dir, sizeof(p->dir), "%s/task", p->run);
    snprintf(p->scr, sizeof(p->scr), "%s/ovl", p->run);
    snprintf(p->out, sizeof(p->out), "%s/out", p->run);
    s.run_dir = p->run;
    s.task_dir = p->dir;
    s.scratch_dir = p->scr;
    s.stdout_path = s.stderr_path = p->out;
    return s;
}

/* Many small files are stopped at the job's disk in all (RLIMIT_FSIZE alone never stops them), the
 * result names the limit, and the next task of the job starts with all its disk again. */
static void run_disk_limit_holds_for_all_the_task_writes(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    char work[160];
    run_paths_t b, b2;
    exec_t *e = quota_exec(f, work, sizeof(work));
    exec_spec_t s = spec_in_run(f, work, "set -e; i=0; while [ $i -lt 100000 ]; do : > f$i; i=$((i + 1)); done; "
                                         "echo all",
                                2, &b);
    s.disk_bytes = 2u << 20;
    s.timeout_ms = 120000; /* the disk stops it: 20 s ran out first on a machine at load 10-18 */
    rec_t rec = {0};
    run_task(f, e, &s, &rec);
    assert_int_not_equal(rec.res.exit_code, 0);
    assert_string_equal(rec.res.limit, "disk");
    assert_non_null(strstr(rec.res.reason, "stopped by the disk limit"));
    assert_true(rec.res.disk_used > (1u << 20));
    char *out = slurp(s.stdout_path);
    assert_non_null(strstr(out, "quota")); /* sh: cannot create f5xxx: Disk quota exceeded */
    free(out);
    files_rm_rf(s.run_dir); /* the caller removes it: a subvolume goes like a directory */
    struct stat st;
    assert_int_equal(lstat(s.run_dir, &st), -1);
    exec_spec_t s2 = spec_in_run(f, work, "head -c 1000000 /dev/zero > big && echo fits", 3, &b2);
    s2.disk_bytes = 2u << 20;
    rec_t rec2 = {0};
    run_task(f, e, &s2, &rec2);
    assert_int_equal(rec2.res.exit_code, 0);
    assert_string_equal(rec2.res.limit, "");
    int closed = 0;
    exec_close(e, closed_cb, &closed);
    run_until_closed(f, &closed);
    assert_int_equal(umount2(work, MNT_DETACH), -1); /* closed: nothing left mounted on it */
}

static void on_renewed(void *arg, int rc, const char *why)
{
    int *out = arg;
    *out = rc ? rc : 1;
    (void)why;
}

/* The task directories' btrfs gone read-only (as when the disk under its image fills: simulated by
 * a remount): the next task is refused for this peer's disk (disk_errno), and so is every task
 * until exec_work_renew has made it anew; then tasks run again. */
static void run_a_failed_task_filesystem_is_made_anew(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    char work[160];
    run_paths_t b1, b2, b3;
    exec_t *e = quota_exec(f, work, sizeof(work));
    const char *why = NULL;
    assert_false(exec_work_failed(e, &why));
    assert_int_equal(exec_work_renew(e, NULL, NULL), -EINVAL); /* nothing failed */
    assert_int_equal(mount(NULL, work, NULL, MS_REMOUNT | MS_RDONLY, NULL), 0);
    exec_spec_t s = spec_in_run(f, work, "echo never", 1, &b1);
    rec_t rec = {0};
    run_task(f, e, &s, &rec);
    assert_true(rec.res.refused);
    assert_int_equal(rec.res.disk_errno, -EROFS);
    assert_true(exec_work_failed(e, &why));
    assert_non_null(strstr(why, "Read-only file system"));
    exec_spec_t s2 = spec_in_run(f, work, "echo never", 2, &b2);
    rec_t rec2 = {0};
    run_task(f, e, &s2, &rec2); /* refused at once: the filesystem failed */
    assert_true(rec2.res.refused);
    assert_int_equal(rec2.res.disk_errno, -EROFS);
    assert_non_null(strstr(rec2.res.reason, "filesystem failed"));
    int renewed = 0;
    assert_int_equal(exec_work_renew(e, on_renewed, &renewed), 0);
    assert_int_equal(exec_work_renew(e, on_renewed, &renewed), -EBUSY); /* under way */
    while (!renewed)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(renewed, 1);
    assert_false(exec_work_failed(e, NULL));
    exec_spec_t s3 = spec_in_run(f, work, "echo again", 3, &b3);
    rec_t rec3 = {0};
    run_task(f, e, &s3, &rec3);
    assert_int_equal(rec3.res.exit_code, 0);
    assert_int_equal(rec3.res.disk_errno, 0);
    char *out = slurp(s3.stdout_path);
    assert_string_equal(out, "again\n");
    free(out);
    files_rm_rf(s3.run_dir);
    int closed = 0;
    exec_close(e, closed_cb, &closed);
    run_until_closed(f, &closed);
    assert_int_equal(umount2(work, MNT_DETACH), -1); /* closed: nothing left mounted on it */
}

/* Without the quota's btrfs (here: no loop device can be had... simulated by a work directory on a
 * path that cannot be mounted), every task with a run directory is refused with the reason. */
static void run_without_its_disk_quota_is_refused(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_opts_t o = f->opts;
    o.work_dir = "/nonexistent/preon-work";
    o.work_size = 512ull << 20;
    exec_t *e = NULL;
    assert_int_equal(exec_new(&f->loop, &o, &e), 0);
    assert_non_null(exec_disk_quota_missing(e));
    run_paths_t b;
    exec_spec_t s = spec_in_run(f, "/nonexistent/preon-work", "echo never", 1, &b);
    rec_t rec = {0};
    run_task(f, e, &s, &rec);
    assert_true(rec.res.refused);
    assert_non_null(strstr(rec.res.reason, "cannot hold the task's disk limit"));
    int closed = 0;
    exec_close(e, closed_cb, &closed);
    run_until_closed(f, &closed);
    /* the volunteer's choice: each file bounded only */
    o.no_disk_quota = true;
    assert_int_equal(exec_new(&f->loop, &o, &e), 0);
    assert_null(exec_disk_quota_missing(e));
    closed = 0;
    exec_close(e, closed_cb, &closed);
    run_until_closed(f, &closed);
}

typedef struct closer {
    rec_t rec;
    exec_t *e;
    int closed;
} closer_t;

static void on_done_close(exec_task_t *t, const exec_result_t *r, void *arg)
{
    closer_t *c = arg;
    on_done(t, r, &c->rec);
    exec_close(c->e, closed_cb, &c->closed);
    assert_int_equal(c->closed, 0); /* this task is still being released */
}

static void close_from_inside_a_callback(void **state)
{
    NEED_SANDBOX();
    fixture_t *f = *state;
    exec_spec_t s = spec_for(f, "exit 0");
    closer_t c = {.rec = {.f = f}, .e = f->e};
    assert_int_equal(exec_task_spawn(f->e, &s, on_done_close, &c, NULL), 0);
    f->e = NULL;
    run_until(f, 1);
    while (c.closed == 0 && !f->watchdog_fired)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(c.closed, 1);
    assert_int_equal(c.rec.res.exit_code, 0);
}

static void exec_new_rejects_bad_options(void **state)
{
    fixture_t *f = *state;
    exec_opts_t bad = f->opts;
    exec_t *e = NULL;
    bad.slots = 0;
    assert_int_equal(exec_new(&f->loop, &bad, &e), -EINVAL);
    bad = f->opts;
    bad.limiter = "relative";
    assert_int_equal(exec_new(&f->loop, &bad, &e), -EINVAL);
    bad = f->opts;
    bad.uid_base = (uid_t)-2;
    assert_int_equal(exec_new(&f->loop, &bad, &e), -EINVAL);
    assert_null(e);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "limit") == 0)
        return exec_limit_main(argc - 1, argv + 1);
    const char *lim = getenv("PREON_TEST_LIMITER");
    if (lim && *lim) {
        if (lim[0] != '/' || strlen(lim) >= sizeof(self_exe) || access(lim, X_OK) != 0) {
            fprintf(stderr, "PREON_TEST_LIMITER=%s: not an absolute path to an executable\n", lim);
            return 1;
        }
        strcpy(self_exe, lim);
    } else {
        ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
        if (n <= 0) {
            perror("readlink /proc/self/exe");
            return 1;
        }
        self_exe[n] = '\0';
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cgroup_mounts_and_self_are_parsed),
        cmocka_unit_test(cgroup_left_by_a_dead_peer_of_our_pid_is_cleared),
        cmocka_unit_test(argv_typical_spec_is_exact),
        cmocka_unit_test(argv_shares_net_only_if_asked_and_allowed),
        cmocka_unit_test(argv_default_bwrap_path),
        cmocka_unit_test(argv_rejects_bad_specs),
        cmocka_unit_test(env_has_the_task_identity_and_nothing_else),
        cmocka_unit_test(status_needs_the_exit_code_object),
        cmocka_unit_test(limit_rejects_bad_options_before_setting_any),
        cmocka_unit_test(limit_waits_for_go),
        cmocka_unit_test(msg_round_trip_and_bad_messages),
        cmocka_unit_test(msg_carries_descriptors_and_refuses_a_cut_message),
        cmocka_unit_test_setup_teardown(exec_new_rejects_bad_options, setup, teardown),
        cmocka_unit_test_setup_teardown(run_writes_stdout_and_stderr_files, setup, teardown),
        cmocka_unit_test_setup_teardown(run_same_file_for_stdout_and_stderr, setup, teardown),
        cmocka_unit_test_setup_teardown(run_reports_exit_code, setup, teardown),
        cmocka_unit_test_setup_teardown(run_reports_signal, setup, teardown),
        cmocka_unit_test_setup_teardown(run_sees_env_and_unprivileged_uid, setup, teardown),
        cmocka_unit_test_setup_teardown(run_task_dir_is_writable_and_owned_by_slot, setup, teardown),
        cmocka_unit_test_setup_teardown(run_cannot_write_outside_task_and_tmp, setup, teardown),
        cmocka_unit_test_setup_teardown(run_tmpfs_is_capped_by_the_disk_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(run_starts_in_the_jobs_files, setup, teardown),
        cmocka_unit_test_setup_teardown(run_starts_with_its_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(run_with_a_skeleton_from_the_spec, setup, teardown),
        cmocka_unit_test_setup_teardown(run_has_no_network_unless_asked_and_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(spawn_refuses_network_when_not_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(run_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(run_kill_during_setup_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(run_background_processes_die_with_the_task, setup, teardown),
        cmocka_unit_test_setup_teardown(run_memory_limit_fails_a_big_allocation, setup, teardown),
        cmocka_unit_test_setup_teardown(run_memory_limit_counts_every_process, setup, teardown),
        cmocka_unit_test_setup_teardown(run_memory_limit_counts_the_tmpfs, setup, teardown),
        cmocka_unit_test_setup_teardown(run_fork_bomb_is_contained, setup, teardown),
        cmocka_unit_test_setup_teardown(run_task_ignoring_sigterm_with_detached_children_is_ended, setup, teardown),
        cmocka_unit_test_setup_teardown(run_leaves_no_cgroup, setup, teardown),
        cmocka_unit_test_setup_teardown(run_minimum_memory_still_runs_a_shell, setup, teardown),
        cmocka_unit_test_setup_teardown(run_process_limit_stops_a_fork_bomb, setup, teardown),
        cmocka_unit_test_setup_teardown(run_single_process_still_runs_the_command, setup, teardown),
        cmocka_unit_test_setup_teardown(run_disk_limit_caps_a_file, setup, teardown),
        cmocka_unit_test_setup_teardown(run_cancel_kills_the_sandbox, setup, teardown),
        cmocka_unit_test_setup_teardown(run_cancel_before_start_never_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(spawn_refuses_missing_bwrap, setup, teardown),
        cmocka_unit_test_setup_teardown(spawn_refuses_missing_limiter, setup, teardown),
        cmocka_unit_test_setup_teardown(spawn_refuses_missing_dirs_and_bad_specs, setup, teardown),
        cmocka_unit_test_setup_teardown(run_refuses_when_bwrap_cannot_build_the_sandbox, setup, teardown),
        cmocka_unit_test_setup_teardown(run_private_dirs_are_reachable, setup, teardown),
        cmocka_unit_test_setup_teardown(run_four_slots_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(run_warm_sandbox_runs_the_next_task_fresh, setup, teardown),
        cmocka_unit_test_setup_teardown(run_tasks_of_another_job_get_their_own_sandbox, setup, teardown),
        cmocka_unit_test_setup_teardown(run_warm_task_is_measured_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(run_a_cancelled_sandbox_is_not_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(run_a_task_the_sandbox_cannot_start_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(run_an_idle_sandbox_ends_by_itself, setup, teardown),
        cmocka_unit_test_setup_teardown(run_disk_limit_holds_for_all_the_task_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(run_a_failed_task_filesystem_is_made_anew, setup, teardown),
        cmocka_unit_test_setup_teardown(run_without_its_disk_quota_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(close_cancels_running_tasks_then_calls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(close_from_inside_a_callback, setup, teardown),
    };
    uid_base = 100000u + (unsigned)(getpid() % 10000) * 8u;
    if (getenv("TEST_FILTER")) /* e.g. TEST_FILTER='run_*' to repeat the sandbox runs alone */
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
