/*
 * sandbox.c: the pure half of exec/. It turns a task spec into the exact argument vector and
 * environment that exec.c hands to uv_spawn, checks the spec against named limits first, and reads
 * bwrap's JSON status back. Nothing here touches the filesystem, the loop or a process, so the
 * sandbox's shape is pinned down by unit tests (tests/unit/test_exec.c) rather than by reading code.
 *
 * The vector is the sandbox's: limiter "limit" <staging, keeper, uid, rlimits> -- bwrap <namespaces,
 * mounts> -- the agent. The rlimits come first because bwrap 0.8 cannot set them, and the keeper
 * starts bwrap under them, so they bind bwrap and everything inside. Each task's command and
 * environment go to the sandbox in a message (exec/keeper.c). See docs/sandbox.md for what the
 * task sees.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "exec/exec.h"
#include "exec/internal.h"

/* The few /etc files a task may need (name service, TLS roots, the linker cache, Debian's
 * alternatives symlinks, e.g. awk -> mawk), rather than all of /etc. Bound with --ro-bind-try, so
 * a host without one of them still builds the sandbox. */
static const char *const etc_files[] = {
    "/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
    "/etc/passwd",       "/etc/group",       "/etc/nsswitch.conf", "/etc/hosts",
    "/etc/host.conf",    "/etc/resolv.conf", "/etc/gai.conf",  "/etc/protocols",
    "/etc/services",     "/etc/localtime",   "/etc/ssl",       "/etc/ca-certificates",
    "/etc/mime.types",
};

typedef struct vec {
    char **v;
    size_t n, cap;
} vec_t;

static void push(vec_t *a, char *s) /* takes s */
{
    if (a->n + 2 > a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->v = xreallocarray(a->v, a->cap, sizeof(*a->v));
    }
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

static void pushs(vec_t *a, const char *s) { push(a, xstrdup(s)); }

static bool is_abs_path(const char *p)
{
    return p && p[0] == '/' && strnlen(p, EXEC_MAX_PATH + 1) <= EXEC_MAX_PATH;
}

static int fail(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t whylen, const char *fmt, ...)
{
    if (why && whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* The part of the check that the environment needs too. */
static int check_identity(const exec_spec_t *spec, char *why, size_t whylen)
{
    if (!spec)
        return fail(why, whylen, "no task spec");
    size_t idlen = spec->job_id ? strnlen(spec->job_id, EXEC_MAX_JOB_ID + 1) : 0;
    if (idlen == 0 || idlen > EXEC_MAX_JOB_ID || strspn(spec->job_id, "0123456789abcdefABCDEF") != idlen)
        return fail(why, whylen, "job id must be 1 to %d hex digits", EXEC_MAX_JOB_ID);
    size_t namelen = spec->job_name ? strnlen(spec->job_name, EXEC_MAX_JOB_NAME + 1) : 0;
    if (namelen == 0 || namelen > EXEC_MAX_JOB_NAME)
        return fail(why, whylen, "job name must be 1 to %d bytes", EXEC_MAX_JOB_NAME);
    if (spec->task_count == 0 || spec->task_index >= spec->task_count)
        return fail(why, whylen, "task %" PRIu32 " is not below the task count %" PRIu32, spec->task_index,
                    spec->task_count);
    return 0;
}

int exec__check_spec(const exec_opts_t *opts, const exec_spec_t *spec, char *why, size_t whylen)
{
    if (!opts)
        return fail(why, whylen, "no executor options");
    if (!is_abs_path(opts->limiter))
        return fail(why, whylen, "the limiter must be an absolute path");
    if (opts->bwrap && !is_abs_path(opts->bwrap))
        return fail(why, whylen, "bwrap must be an absolute path");
    int rc = check_identity(spec, why, whylen);
    if (rc)
        return rc;
    if (!is_abs_path(spec->job_dir))
        return fail(why, whylen, "the job directory must be an absolute path");
    if (!is_abs_path(spec->task_dir))
        return fail(why, whylen, "the task directory must be an absolute path");
    if (!is_abs_path(spec->scratch_dir))
        return fail(why, whylen, "the scratch directory must be an absolute path");
    if (!is_abs_path(spec->stdout_path) || !is_abs_path(spec->stderr_path))
        return fail(why, whylen, "the stdout and stderr files must be absolute paths");
    size_t clen = spec->command ? strnlen(spec->command, EXEC_MAX_COMMAND + 1) : 0;
    if (clen == 0)
        return fail(why, whylen, "no command");
    if (clen > EXEC_MAX_COMMAND)
        return fail(why, whylen, "the command is longer than %d bytes", EXEC_MAX_COMMAND);
    if (spec->timeout_ms == 0)
        return fail(why, whylen, "the time-out must be at least 1 ms");
    if (spec->timeout_ms > EXEC_MAX_TIMEOUT_MS || spec->grace_ms > EXEC_MAX_TIMEOUT_MS)
        return fail(why, whylen, "the time-out and its grace must be at most %llu days",
                    EXEC_MAX_TIMEOUT_MS / 86400000ull);
    if (spec->memory_bytes < EXEC_MIN_MEMORY)
        return fail(why, whylen, "memory limit %" PRIu64 " bytes is below the sandbox's minimum of %llu MiB",
                    spec->memory_bytes, EXEC_MIN_MEMORY >> 20);
    if (spec->disk_bytes == 0)
        return fail(why, whylen, "the disk limit must be at least 1 byte");
    if (spec->processes == 0 || spec->processes > EXEC_MAX_PROCESSES)
        return fail(why, whylen, "processes must be 1 to %u", EXEC_MAX_PROCESSES);
    if (spec->slot >= opts->slots)
        return fail(why, whylen, "slot %u is not below the slot count %u", spec->slot, opts->slots);
    return 0;
}

int exec_build_argv(const exec_opts_t *opts, const exec_spec_t *spec, char ***argv_out)
{
    if (!argv_out)
        return -EINVAL;
    *argv_out = NULL;
    int rc = exec__check_spec(opts, spec, NULL, 0);
    if (rc)
        return rc;
    /* tmpfs lives in RAM: its pages count against the task's memory cgroup, and each one is also
     * capped at the smaller of the disk and memory limits. */
    uint64_t tmpfs = spec->disk_bytes < spec->memory_bytes ? spec->disk_bytes : spec->memory_bytes;
    vec_t a = {0};
    pushs(&a, opts->limiter);
    pushs(&a, "limit");
    pushs(&a, "--dir");
    pushs(&a, spec->job_dir);
    pushs(&a, "job");
    pushs(&a, "--keeper");
    push(&a, xasprintf("%d", EXEC_CTL_FD));
    pushs(&a, "--tmpfs-size");
    push(&a, xasprintf("%" PRIu64, tmpfs));
    pushs(&a, "--gid");
    push(&a, xasprintf("%u", (unsigned)((opts->gid_base ? opts->gid_base : EXEC_DEFAULT_ID_BASE) + spec->slot)));
    pushs(&a, "--uid");
    push(&a, xasprintf("%u", (unsigned)((opts->uid_base ? opts->uid_base : EXEC_DEFAULT_ID_BASE) + spec->slot)));
    /* Memory and the process count are bounded for the whole task by its cgroup (exec.c adds
     * --cgroup); RLIMIT_NPROC, one above the cgroup's pids.max, is a second fence per slot uid
     * (one above: so that the cgroup is the one that refuses a fork, and counts it). */
    pushs(&a, "--nproc");
    push(&a, xasprintf("%" PRIu32, spec->processes + EXEC_NPROC_OVERHEAD + 1));
    pushs(&a, "--fsize");
    push(&a, xasprintf("%" PRIu64, spec->disk_bytes));
    pushs(&a, "--core");
    pushs(&a, "0");
    pushs(&a, "--nofile");
    push(&a, xasprintf("%d", EXEC_NOFILE));
    pushs(&a, "--msgqueue"); /* no POSIX message queue: it would outlive its task in a warm sandbox */
    pushs(&a, "0");
    pushs(&a, "--");

    pushs(&a, opts->bwrap ? opts->bwrap : EXEC_DEFAULT_BWRAP);
    pushs(&a, "--unshare-all");
    if (spec->network && opts->allow_network)
        pushs(&a, "--share-net");
    static const char *const fixed[] = {
        "--cap-drop", "ALL", "--die-with-parent", "--new-session", "--as-pid-1", "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
        "--symlink", "usr/sbin", "/sbin",
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        pushs(&a, fixed[i]);
    for (size_t i = 0; i < sizeof(etc_files) / sizeof(etc_files[0]); i++) {
        pushs(&a, "--ro-bind-try");
        pushs(&a, etc_files[i]);
        pushs(&a, etc_files[i]);
    }
    /* /task, /tmp and /dev/shm are the keeper's shared mount points: it mounts each task's own on
     * them (exec/keeper.c). /dev itself is made read-only, or it would be an uncapped tmpfs. */
    static const char *const mounts[] = {
        "--proc", "/proc", "--dev", "/dev", "--bind", EXEC_STAGE_SHM, "/dev/shm", "--remount-ro", "/dev",
        "--bind", EXEC_STAGE_TMP, "/tmp", "--ro-bind", EXEC_STAGE_JOB, "/job", "--bind", EXEC_STAGE_ROOT, "/task",
        /* The root is bwrap's own tmpfs: made read-only last, so only /task and /tmp take writes. */
        "--remount-ro", "/", "--chdir", "/", "--hostname", "preon",
    };
    for (size_t i = 0; i < sizeof(mounts) / sizeof(mounts[0]); i++)
        pushs(&a, mounts[i]);
    pushs(&a, "--json-status-fd");
    push(&a, xasprintf("%d", EXEC_STATUS_FD));
    pushs(&a, "--");
    /* The agent, pid 1: the limiter's binary by the descriptor the keeper gives it. */
    push(&a, xasprintf("/proc/self/fd/%d", EXEC_AGENT_EXE_FD));
    pushs(&a, "limit");
    pushs(&a, "--agent");
    push(&a, xasprintf("%d", EXEC_AGENT_FD));
    *argv_out = a.v;
    return 0;
}

int exec_build_env(const exec_spec_t *spec, char ***env_out)
{
    if (!env_out)
        return -EINVAL;
    *env_out = NULL;
    int rc = check_identity(spec, NULL, 0);
    if (rc)
        return rc;
    vec_t a = {0};
    pushs(&a, "PATH=/job:/usr/local/bin:/usr/bin:/bin");
    pushs(&a, "HOME=/task");
    pushs(&a, "TMPDIR=/tmp");
    pushs(&a, "LANG=C.UTF-8");
    push(&a, xasprintf("PREON_TASK=%" PRIu32, spec->task_index));
    push(&a, xasprintf("PREON_TASKS=%" PRIu32, spec->task_count));
    push(&a, xasprintf("PREON_JOB=%s", spec->job_name));
    push(&a, xasprintf("PREON_JOB_ID=%s", spec->job_id));
    pushs(&a, "PREON_JOB_DIR=/job");
    pushs(&a, "PREON_TASK_DIR=/task");
    *env_out = a.v;
    return 0;
}

void exec_argv_free(char **argv)
{
    if (!argv)
        return;
    for (char **p = argv; *p; p++)
        free(*p);
    free(argv);
}

int exec__parse_status(const char *buf, size_t len, int *exit_code, pid_t *child_pid)
{
    size_t off = 0;
    int rc = -ENOENT;
    *child_pid = 0;
    if (len > EXEC_MAX_STATUS)
        return -EMSGSIZE;
    while (off < len) {
        while (off < len && (buf[off] == ' ' || buf[off] == '\n' || buf[off] == '\t' || buf[off] == '\r'))
            off++;
        if (off == len)
            break;
        json_error_t err;
        json_t *o = json_loadb(buf + off, len - off, JSON_DISABLE_EOF_CHECK, &err);
        if (!o || !json_is_object(o) || err.position <= 0) {
            json_decref(o);
            return -EBADMSG;
        }
        off += (size_t)err.position;
        json_t *pid = json_object_get(o, "child-pid");
        if (pid) {
            json_int_t v = json_is_integer(pid) ? json_integer_value(pid) : 0;
            if (v <= 1 || v > INT32_MAX) { /* never ourselves, init or everyone */
                json_decref(o);
                return -EBADMSG;
            }
            *child_pid = (pid_t)v;
        }
        json_t *code = json_object_get(o, "exit-code");
        if (code) {
            json_int_t v = json_is_integer(code) ? json_integer_value(code) : -1;
            if (v < 0 || v > 255) {
                json_decref(o);
                return -EBADMSG;
            }
            *exit_code = (int)v;
            rc = 0;
        }
        json_decref(o);
    }
    return rc;
}
