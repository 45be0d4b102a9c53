/*
 * keeper.c: a sandbox that runs one task after another (docs/sandbox.md, "Warm sandboxes"). libc
 * only: it is part of the limiter (preon-limit, and `preon limit`), started by preon for each
 * sandbox with `--keeper 5`.
 *
 * Two processes do the work, one on each side of the sandbox's walls:
 *
 * The keeper (root, in the limiter's private mount namespace, inside the sandbox's cgroup) makes
 * three shared mount points, EXEC_STAGE_ROOT, _TMP and _SHM, each a placeholder tmpfs, and starts
 * bwrap (as the slot's uid, with the limits) with `--bind` of each at /task, /tmp and /dev/shm: a
 * mount the keeper makes on one of them later propagates into the sandbox (bwrap makes its mounts
 * slaves of ours). For each task preon sends it ('R', exec/msg.h), it mounts the task's overlay at
 * EXEC_STAGE_ROOT (as the limiter did for a sandbox of one task: the job below, the task's
 * directory above, the skeleton made first if preon did not) and a fresh tmpfs on each of the other
 * two, hands the task to the agent, and once the agent says it is over, unmounts the three and
 * tells preon. preon closing its socket ends the sandbox; the keeper's death ends it too (bwrap's
 * monitor has SIGKILL as its parent-death signal, and its pid 1 dies with it: --die-with-parent).
 *
 * The agent is the sandbox's pid 1 (bwrap --as-pid-1), run from the limiter's own binary through
 * a descriptor (/proc/self/fd/EXEC_AGENT_EXE_FD: no path of the host in the sandbox). It has the
 * slot's uid and no capabilities, as the task has; it is not dumpable (a task cannot ptrace it) and
 * as pid 1 it gets no signal from inside its namespace that it did not ask for. For each task: it
 * removes the System V IPC objects the last one left (POSIX message queues cannot be made:
 * RLIMIT_MSGQUEUE is 0), spawns `/bin/sh -c COMMAND` in a new session, in /task, with the task's
 * environment and its stdout and stderr files; when that process ends it kills every other process
 * of the namespace (kill(-1): every process there is its descendant, so once waitpid says there
 * are no children left, nothing of the task is left) and sends the wait status.
 *
 * So the next task of the job starts in a sandbox whose namespaces, bwrap and mounts of /usr, /etc,
 * /proc, /dev and /job are already there (about 5 ms of a cold start), with nothing of the task
 * before it: its processes are gone, its /task, /tmp and /dev/shm are unmounted, new ones mounted.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mount.h>
#include <sys/msg.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec/exec.h"
#include "exec/internal.h"
#include "exec/msg.h"

#define KEEPER_FAIL EXEC_LIMIT_FAIL
#define KEEPER_MAX_REASON 400 /* bytes of an agent's reason passed on to preon */

/* One message out. 0 or -errno (the reader is gone). */
static int say(int sock, char *buf, char type, const char *const *f, int nf, const int *fds, int nfds)
{
    int len = exec__msg_encode(type, f, nf, buf, EXEC_MSG_MAX);
    if (len < 0)
        return len;
    return exec__msg_send(sock, buf, (size_t)len, fds, nfds, 0);
}

/* ---- the keeper ---- */

/* A placeholder tmpfs at path, shared: what is mounted on it later shows in the sandbox too. */
static int make_placeholder(const char *path)
{
    if ((mkdir(path, 0755) != 0 && errno != EEXIST) ||
        mount("preon", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=4k") != 0 ||
        mount(NULL, path, NULL, MS_SHARED, NULL) != 0) {
        fprintf(stderr, "preon limit: the sandbox's mount point %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* bwrap's parent's child, between fork and exec: the agent's descriptors at their numbers, the
 * slot's uid and limits, death with the keeper. Never returns. */
static void launch(const exec_keeper_args_t *a, int exe, int agent, pid_t keeper)
{
    int e2 = fcntl(exe, F_DUPFD_CLOEXEC, 10), a2 = fcntl(agent, F_DUPFD_CLOEXEC, 10);
    if (e2 < 0 || a2 < 0 || dup2(e2, EXEC_AGENT_EXE_FD) < 0 || dup2(a2, EXEC_AGENT_FD) < 0) {
        fprintf(stderr, "preon limit: the agent's descriptors: %s\n", strerror(errno));
        _exit(KEEPER_FAIL);
    }
    if (exec__limit_drop(&a->limits) != 0)
        _exit(KEEPER_FAIL);
    /* After the uid change, which clears it: the sandbox must not outlive its keeper. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != keeper)
        _exit(KEEPER_FAIL);
    execv(a->argv[0], a->argv);
    fprintf(stderr, "preon limit: cannot run %s: %s\n", a->argv[0], strerror(errno));
    _exit(KEEPER_FAIL);
}

/* Which of the task's mounts are up: unmounted in one go (lazily: its processes are gone). */
typedef struct mounts {
    bool root, tmp, shm;
} mounts_t;

static void unmount_task(mounts_t *m)
{
    if (m->root && umount2(EXEC_STAGE_ROOT, MNT_DETACH) != 0)
        fprintf(stderr, "preon limit: unmounting /task: %s\n", strerror(errno));
    if (m->tmp && umount2(EXEC_STAGE_TMP, MNT_DETACH) != 0)
        fprintf(stderr, "preon limit: unmounting /tmp: %s\n", strerror(errno));
    if (m->shm && umount2(EXEC_STAGE_SHM, MNT_DETACH) != 0)
        fprintf(stderr, "preon limit: unmounting /dev/shm: %s\n", strerror(errno));
    *m = (mounts_t){0};
}

/* A task's /task, /tmp and /dev/shm. 0, or -1 with why filled (what was mounted is undone). */
static int mount_task(const exec_keeper_args_t *a, const exec_msg_t *r, mounts_t *m, char *why, size_t whylen)
{
    char opts[64];
    snprintf(opts, sizeof(opts), "mode=1777,size=%llu", a->tmpfs_size);
    bool walk = !strcmp(r->f[2], "1");
    if (exec__limit_mount_task(r->f[0], r->f[1], a->limits.uid, a->limits.gid, true, walk, why, whylen) != 0)
        return -1;
    m->root = true;
    if (mount("preon-tmp", EXEC_STAGE_TMP, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0) {
        snprintf(why, whylen, "cannot mount the task's /tmp: %s", strerror(errno));
        unmount_task(m);
        return -1;
    }
    m->tmp = true;
    if (mount("preon-shm", EXEC_STAGE_SHM, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0) {
        snprintf(why, whylen, "cannot mount the task's /dev/shm: %s", strerror(errno));
        unmount_task(m);
        return -1;
    }
    m->shm = true;
    return 0;
}

/* An agent's reason, made printable and short before it goes on (the agent is in the sandbox). */
static void clean_reason(const char *in, char *out, size_t outlen)
{
    size_t n = 0;
    for (; in[n] && n < outlen - 1 && n < KEEPER_MAX_REASON; n++)
        out[n] = (unsigned char)in[n] < 0x20 || (unsigned char)in[n] == 0x7f ? '?' : in[n];
    out[n] = '\0';
}

int exec__keeper_main(const exec_keeper_args_t *a)
{
    int ctl = a->ctl, sp[2] = {-1, -1}, exe = -1, mon = -1, rc = KEEPER_FAIL;
    char *buf = malloc(2 * EXEC_MSG_MAX); /* what came in, and what goes on to the agent */
    pid_t child = -1;
    mounts_t mounts = {0};
    bool ready = false, busy = false;
    if (!buf || fcntl(ctl, F_SETFD, FD_CLOEXEC) != 0) {
        fprintf(stderr, "preon limit: --keeper %d: %s\n", ctl, buf ? strerror(errno) : "out of memory");
        goto out;
    }
    if (make_placeholder(EXEC_STAGE_ROOT) != 0 || make_placeholder(EXEC_STAGE_TMP) != 0 ||
        make_placeholder(EXEC_STAGE_SHM) != 0)
        goto out;
    exe = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (exe < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0) {
        fprintf(stderr, "preon limit: the agent's binary and socket: %s\n", strerror(errno));
        goto out;
    }
    pid_t me = getpid();
    child = fork();
    if (child < 0) {
        fprintf(stderr, "preon limit: fork: %s\n", strerror(errno));
        goto out;
    }
    if (child == 0)
        launch(a, exe, sp[1], me);
    close(sp[1]);
    sp[1] = -1;
    close(exe);
    exe = -1;
    mon = pidfd_open(child, 0);
    char pidstr[24];
    snprintf(pidstr, sizeof(pidstr), "%d", (int)child);
    const char *hello[] = {pidstr};
    if (mon < 0 || say(ctl, buf, 'H', hello, 1, &mon, 1) != 0) {
        fprintf(stderr, "preon limit: cannot tell preon of the sandbox: %s\n", strerror(errno));
        goto out;
    }
    struct pollfd p[3] = {{.fd = ctl, .events = POLLIN}, {.fd = sp[0], .events = POLLIN}, {.fd = mon, .events = POLLIN}};
    for (;;) {
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "preon limit: poll: %s\n", strerror(errno));
            goto out;
        }
        if (p[1].revents) { /* the agent: first, so that its last word is read before its end */
            int fds[EXEC_MSG_MAX_FDS], nfds;
            ssize_t n = exec__msg_recv(sp[0], buf, EXEC_MSG_MAX, fds, &nfds, 0);
            exec_msg_t m;
            for (int i = 0; i < (n > 0 ? nfds : 0); i++)
                close(fds[i]); /* the agent sends none */
            long long st;
            if (n > 0 && exec__msg_decode(buf, (size_t)n, &m) == 0 && m.type == 'Y' && !ready) {
                ready = true;
                if (say(ctl, buf, 'Y', NULL, 0, NULL, 0) != 0)
                    goto out;
            } else if (n > 0 && m.type == 'D' && busy && m.nf == 1 && exec__msg_int(m.f[0], 0, 0xffff, &st) == 0) {
                /* Every process of the task is gone: nothing writes /task any more, so preon may
                 * collect it while the overlay is unmounted here (its unmount syncs the upper
                 * layer: about 1.5 ms, off the task's path). The next task is read after it. */
                busy = false;
                char sts[24];
                snprintf(sts, sizeof(sts), "%lld", st);
                const char *f[] = {sts};
                int said = say(ctl, buf, 'D', f, 1, NULL, 0);
                unmount_task(&mounts);
                if (said != 0)
                    goto out;
            } else if (n > 0 && m.type == 'F' && busy && m.nf == 1) {
                busy = false;
                char why[KEEPER_MAX_REASON + 1];
                clean_reason(m.f[0], why, sizeof(why));
                const char *f[] = {why};
                int said = say(ctl, buf, 'F', f, 1, NULL, 0);
                unmount_task(&mounts);
                if (said != 0)
                    goto out;
            } else { /* gone, or a word out of turn: the sandbox ends */
                if (n != 0)
                    fprintf(stderr, "preon limit: the sandbox's agent broke its protocol\n");
                kill(child, SIGKILL);
                p[1].fd = -1;
            }
            continue;
        }
        if (p[2].revents) { /* bwrap's monitor is gone, and the sandbox with it */
            int st;
            while (waitpid(child, &st, 0) < 0 && errno == EINTR)
                ;
            child = -1;
            unmount_task(&mounts);
            rc = ready ? 1 : KEEPER_FAIL; /* not ready: bwrap's message on stderr says why */
            goto out;
        }
        if (p[0].revents) { /* preon */
            int fds[EXEC_MSG_MAX_FDS], nfds = 0;
            ssize_t n = exec__msg_recv(ctl, buf, EXEC_MSG_MAX, fds, &nfds, 0);
            exec_msg_t m;
            if (n == 0) { /* preon is done with this sandbox */
                rc = 0;
                goto out;
            }
            if (n < 0 || exec__msg_decode(buf, (size_t)n, &m) != 0 || m.type != 'R' || m.nf < 4 || nfds != 2 ||
                !ready || busy) {
                for (int i = 0; i < (n > 0 ? nfds : 0); i++)
                    close(fds[i]);
                fprintf(stderr, "preon limit: a message from preon out of turn\n");
                goto out;
            }
            char why[KEEPER_MAX_REASON + 1];
            if (mount_task(a, &m, &mounts, why, sizeof(why)) != 0) {
                const char *f[] = {why};
                close(fds[0]);
                close(fds[1]);
                if (say(ctl, buf, 'F', f, 1, NULL, 0) != 0)
                    goto out;
                continue;
            }
            /* To the agent: the command and the environment, with the two files. */
            char *fwd = buf + EXEC_MSG_MAX;
            int len = exec__msg_encode('R', m.f + 3, m.nf - 3, fwd, EXEC_MSG_MAX);
            int sent = len < 0 ? len : exec__msg_send(sp[0], fwd, (size_t)len, fds, 2, 0);
            close(fds[0]);
            close(fds[1]);
            if (sent != 0) {
                fprintf(stderr, "preon limit: cannot hand the task to the agent: %s\n", strerror(-sent));
                unmount_task(&mounts);
                kill(child, SIGKILL);
                continue; /* the monitor's end is seen next */
            }
            busy = true;
        }
    }
out:
    if (child > 0) { /* ours to end: nothing of the sandbox outlives its keeper */
        kill(child, SIGKILL);
        while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    unmount_task(&mounts);
    if (mon >= 0)
        close(mon);
    if (sp[0] >= 0)
        close(sp[0]);
    if (sp[1] >= 0)
        close(sp[1]);
    if (exe >= 0)
        close(exe);
    free(buf);
    return rc;
}

/* ---- the agent ---- */

/* Removes every System V IPC object of the sandbox's IPC namespace (the last task's). */
static void ipc_clean(void)
{
    static const char *const files[] = {"/proc/sysvipc/shm", "/proc/sysvipc/msg", "/proc/sysvipc/sem"};
    for (int k = 0; k < 3; k++) {
        FILE *f = fopen(files[k], "re");
        if (!f)
            continue;
        char line[512];
        bool head = true;
        while (fgets(line, sizeof(line), f)) {
            int id;
            if (head) { /* the column names */
                head = false;
                continue;
            }
            if (sscanf(line, "%*d %d", &id) != 1)
                continue;
            if (k == 0)
                shmctl(id, IPC_RMID, NULL);
            else if (k == 1)
                msgctl(id, IPC_RMID, NULL);
            else
                semctl(id, 0, IPC_RMID);
        }
        fclose(f);
    }
}

/* Kills whatever is left in the namespace and reaps it all: every process there is ours to wait
 * for (we are pid 1), so no children left means nothing left. */
static void end_all(void)
{
    kill(-1, SIGKILL);
    for (;;) {
        if (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
            continue;
        break; /* ECHILD */
    }
}

/* Starts /bin/sh -c cmd in /task, in a new session, with the task's environment and files, default
 * signal handling and no other descriptor. posix_spawn: a vfork-style clone (no copy of our page
 * tables: on this machine's VM a fork and its page faults cost more than the task's own echo); an
 * error of any step (the chdir, a dup2, the exec) comes back as its return value. */
static int spawn_task(const char *cmd, char **env, int devnull, int out, int err, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_addchdir_np(&fa, "/task");
    posix_spawn_file_actions_adddup2(&fa, devnull, 0);
    posix_spawn_file_actions_adddup2(&fa, out, 1);
    posix_spawn_file_actions_adddup2(&fa, err, 2);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
    int rc = posix_spawn(pid, "/bin/sh", &fa, &at, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    return rc;
}

int exec__agent_main(int sock)
{
    /* Not dumpable: a task of the same uid can neither ptrace this process nor open its /proc files. */
    if (prctl(PR_SET_DUMPABLE, 0) != 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || chdir("/") != 0) {
        fprintf(stderr, "preon limit: the agent: %s\n", strerror(errno));
        return KEEPER_FAIL;
    }
    if (sock > 3)
        close_range(3, (unsigned)sock - 1, 0);
    close_range((unsigned)sock + 1, ~0U, 0);
    fcntl(sock, F_SETFD, FD_CLOEXEC);
    signal(SIGCHLD, SIG_DFL); /* never ignored: its children must stay ours to wait for */
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    char *buf = malloc(EXEC_MSG_MAX);
    if (devnull < 0 || !buf) {
        fprintf(stderr, "preon limit: the agent cannot start: %s\n", strerror(errno));
        return KEEPER_FAIL;
    }
    if (say(sock, buf, 'Y', NULL, 0, NULL, 0) != 0)
        return KEEPER_FAIL;
    for (;;) {
        int fds[EXEC_MSG_MAX_FDS], nfds = 0;
        ssize_t n = exec__msg_recv(sock, buf, EXEC_MSG_MAX, fds, &nfds, 0);
        exec_msg_t m;
        if (n <= 0 || exec__msg_decode(buf, (size_t)n, &m) != 0 || m.type != 'R' || m.nf < 1 || nfds != 2) {
            for (int i = 0; i < (n > 0 ? nfds : 0); i++)
                close(fds[i]);
            return n == 0 ? 0 : KEEPER_FAIL;
        }
        char *env[EXEC_MSG_MAX_FIELDS + 1];
        for (int i = 1; i < m.nf; i++)
            env[i - 1] = (char *)m.f[i];
        env[m.nf - 1] = NULL;
        ipc_clean();
        pid_t pid = -1;
        int rc = spawn_task(m.f[0], env, devnull, fds[0], fds[1], &pid);
        close(fds[0]);
        close(fds[1]);
        if (rc) { /* it never ran */
            char why[KEEPER_MAX_REASON];
            snprintf(why, sizeof(why), "cannot start /bin/sh -c in /task: %s", strerror(rc));
            const char *f[] = {why};
            if (say(sock, buf, 'F', f, 1, NULL, 0) != 0)
                return KEEPER_FAIL;
            continue;
        }
        int status = 0;
        for (;;) { /* the command's end; orphans of the task are reaped on the way */
            int st;
            pid_t w = waitpid(-1, &st, 0);
            if (w == pid) {
                status = st;
                break;
            }
            if (w < 0 && errno != EINTR)
                break;
        }
        end_all();
        char sts[24];
        snprintf(sts, sizeof(sts), "%d", status);
        const char *f[] = {sts};
        if (say(sock, buf, 'D', f, 1, NULL, 0) != 0)
            return KEEPER_FAIL;
    }
}

/* ---- the entry point ---- */

int exec_limit_main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--agent")) { /* inside a sandbox */
        int fd;
        if (exec__limit_fd_arg(argv[2], &fd) != 0) {
            fprintf(stderr, "preon limit: --agent needs a file descriptor\n");
            return KEEPER_FAIL;
        }
        return exec__agent_main(fd);
    }
    exec_limit_args_t a;
    int rc = exec__limit_parse(argc, argv, &a);
    if (rc == 0)
        rc = exec__limit_enter(&a);
    if (rc)
        return rc;
    if (a.keeper_fd >= 0) {
        exec_keeper_args_t ka = {.ctl = a.keeper_fd, .tmpfs_size = a.tmpfs_size, .limits = a.limits, .argv = a.prog};
        return exec__keeper_main(&ka);
    }
    if (exec__limit_drop(&a.limits) != 0)
        return KEEPER_FAIL;
    execvp(a.prog[0], a.prog);
    fprintf(stderr, "preon limit: cannot run %s: %s\n", a.prog[0], strerror(errno));
    return KEEPER_FAIL;
}
