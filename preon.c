/*
 * preon.c: the `preon` command. Parses argv and wires the modules together, nothing more.
 *   preon mount [options] DIR     mount a peer (see docs/usage.md)
 *   preon wait [--mount DIR] JOB  block until JOB is over; exit 0 if it succeeded
 *   preon status [--mount DIR] [--json] [JOB]
 *   preon submit [--mount DIR] [--name NAME] [--wait] SRC   publish a directory as a job (fs/submit.c)
 *   preon get --peer URL... JOB_ID[/PATH] DEST   download from the swarm (swarm/get.c)
 *   preon keygen [--out FILE]     make an Ed25519 key pair (core/key.c)
 *   preon id [--data DIR | --key FILE]  print a peer's public key
 *   preon sign ...                the headers of a signed request (pool/auth.h), for scripts and tests
 *   preon limit ...               internal: the sandbox's rlimit wrapper (exec/limit.c)
 *   preon SOURCE DIR -o OPTS      as a mount helper (mount -t fuse.preon, /etc/fstab; also when run
 *                                 as mount.fuse.preon): preon mount -o OPTS DIR (core/mntopt.h)
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "core/files.h"
#include "core/hash.h"
#include "core/jobdesc.h"
#include "core/key.h"
#include "core/log.h"
#include "core/mntopt.h"
#include "core/sdnotify.h"
#include "core/xalloc.h"
#include "exec/exec.h"
#include "fs/fs.h"
#include "pool/auth.h"
#include "pool/wire.h"
#include "swarm/get.h"
#include "tracker/tracker.h"

static const char usage_main[] =
    "usage: preon <command> [options]\n"
    "  mount [options] DIR      mount a peer at DIR (preon mount --help)\n"
    "  wait [--mount DIR] JOB   wait until JOB is over; exit 0 if every task succeeded, 1 if not\n"
    "  submit [--mount DIR] [--name NAME] [--wait] SRC  publish the directory SRC as a job; print its id\n"
    "  status [--mount DIR] [--json] [JOB]  print the peer and its jobs, or one job's status\n"
    "  get --peer URL JOB_ID[/PATH] DEST  download a job's file(s), verified (preon get --help)\n"
    "  tracker [options]        run a BitTorrent-compatible tracker (preon tracker --help)\n"
    "  keygen [--out FILE]      make an Ed25519 key pair (default: the peer's, DATA/key); print its public key\n"
    "  id [--data DIR | --key FILE]  print the peer's public key (its identity in the pool)\n"
    "  sign --key FILE --to KEY METHOD TARGET  print the headers of a signed request (docs/security.md)\n"
    "  endorse --key FILE [--days N] [--note TEXT] KEY  endorse a researcher's KEY as a pool authority\n"
    "  --help, --version\n";

static const char usage_mount[] =
    "usage: preon mount [options] DIR\n"
    "  -f, --foreground     stay in the foreground (default: detach once mounted; the log then goes to\n"
    "                       DATA/preon.log unless --log says where)\n"
    "  -o NAME[=VALUE],...  the options below as mount options, as mount -t fuse.preon and /etc/fstab\n"
    "                       pass them (slots=4,data=/var/lib/preon; ro and mount's generic ones too)\n"
    "  --data DIR           data directory (default $XDG_DATA_HOME/preon or ~/.local/share/preon)\n"
    "  --slots N            tasks run at once (default: number of CPUs)\n"
    "  --memory SIZE        memory all tasks here may use together, e.g. 8G (default: the machine's)\n"
    "  --disk SIZE          disk all tasks here may ask for together (default: the data directory's free space)\n"
    "  --no-disk-quota      bound each file a task writes by its job's disk, not all it writes together (for\n"
    "                       machines without btrfs or loop devices; see docs/sandbox.md)\n"
    "  --cache SIZE         quota of the block cache (other peers' blocks), e.g. 20G (default: 10% of the\n"
    "                       data directory's filesystem, at least 256M)\n"
    "  --cpu PERCENT        share of the machine's CPUs all tasks here may use together, 1-100 (default 100)\n"
    "  --when always|idle   idle: run tasks only while the machine is idle (no keyboard or mouse input for\n"
    "                       --idle-after, other processes under --idle-cpu); when its owner returns, tasks\n"
    "                       are suspended at once, and given back to run elsewhere after --idle-grace\n"
    "  --idle-after TIME    no input for this long is idle, e.g. 90s, 5m (default 5m)\n"
    "  --idle-cpu PERCENT   other processes using this share of the CPUs or more is busy, 0-100 (default 25;\n"
    "                       0: input alone decides)\n"
    "  --idle-grace TIME    busy this long: suspended tasks are given back (default 10m)\n"
    "  --input-dir DIR      the input devices watched (default /dev/input: every event* there)\n"
    "  --quiet-ms N         publish a copied job after N ms with no file open (default 1000)\n"
    "  --uid-base N         sandbox user ids are N + slot (default 64000)\n"
    "  --allow-network      run jobs that ask for network access\n"
    "  --listen ADDR        address of the peer's HTTP API and embedded tracker (default 127.0.0.1)\n"
    "  --port N             its port (default 7650; if taken, an ephemeral port; 0 = ephemeral)\n"
    "  --tracker URL        use this tracker instead of the embedded one (its announce URL)\n"
    "  --pool NAME          the pool to join on the tracker (default \"default\")\n"
    "  --peer URL           a peer of the pool to ask for jobs and blocks (repeatable)\n"
    "  --lease-ms N         lease given to volunteers, renewed while they run a task (default 30000)\n"
    "  --discover-ms N      ask pool peers for their jobs every N ms (default 1000; offers are at once)\n"
    "  --read-deadline-ms N a read of another peer's file that waits this long fails with EIO (default 120000)\n"
    "  --max-remote-jobs N  other peers' jobs held at once; newer ones are not fetched (default 1000)\n"
    "  --max-mirror SIZE    result manifests of other peers' jobs mirrored here, in all (default 256M)\n"
    "  --max-live SIZE      live output of this peer's tasks that volunteers send, kept here in all\n"
    "                       (default 256M)\n"
    "  --trust FILE         run other peers' jobs only if their submitter's key is in FILE or DATA/trusted/\n"
    "                       or endorsed by one there (one key per line; re-read every 2 s; default: only\n"
    "                       this peer's own key). Endorsements of this peer's key: DATA/endorsements/\n"
    "  --host-budget N      API requests per second one host may make here (bursts of 2N; default 1000;\n"
    "                       block requests: 16N); more get 429\n"
    "  --key-budget N       signed requests per second one key may make here (bursts of 2N; default 200)\n"
    "  --host-conns N       connections at once one host may hold to this peer; more are closed at once\n"
    "                       (default 64; loopback clients are exempt unless --host-conns-loopback)\n"
    "  --host-conns-loopback  apply --host-conns to loopback clients too (127.0.0.0/8, ::1)\n"
    "  --request-timeout S  a request (line, headers, body) must arrive whole within S seconds, or its\n"
    "                       connection is cut (default 20)\n"
    "  --ready-fd N         write \"ready\\n\" to fd N once mounted\n"
    "  --log FILE           also log to FILE (a detached peer: instead of DATA/preon.log)\n"
    "  --log-level LEVEL    error, warn, info (default) or debug\n";

typedef struct mount_ctx {
    uv_loop_t loop;
    uv_signal_t sig[2];
    fs_t *fs;
    httpd_t *httpd;
    tracker_t *tracker; /* the embedded tracker, unless --tracker names another */
    char *notify;       /* systemd's $NOTIFY_SOCKET, taken out of the environment (core/sdnotify.h) */
    int status;
} mount_ctx_t;

static void on_signal(uv_signal_t *s, int signum)
{
    mount_ctx_t *c = s->data;
    log_info("signal %d: stopping", signum);
    sdnotify_send(c->notify, "STOPPING=1");
    if (c->fs)
        fs_stop(c->fs);
}

static void on_tracker_closed(void *arg)
{
    mount_ctx_t *c = arg;
    c->tracker = NULL;
    if (c->httpd)
        httpd_close(c->httpd, NULL, NULL);
    c->httpd = NULL;
}

static void on_fs_exit(void *arg, int status)
{
    mount_ctx_t *c = arg;
    c->fs = NULL;
    c->status = status;
    for (int i = 0; i < 2; i++)
        uv_close((uv_handle_t *)&c->sig[i], NULL);
    if (c->tracker)
        tracker_close(c->tracker, on_tracker_closed, c);
    else
        on_tracker_closed(c);
}

/* The peer's HTTP server, on --port or, if that is taken and was not asked for, an ephemeral one. */
static int start_httpd(mount_ctx_t *c, httpd_opts_t ho, const char *listen, long port, char **url)
{
    ho.addr = listen;
    ho.port = (uint16_t)(port < 0 ? 7650 : port);
    int rc = httpd_new(&c->loop, &ho, &c->httpd);
    if (rc == -EADDRINUSE && port < 0) {
        log_warn("port %u is taken: using an ephemeral port (pass --port to choose)", ho.port);
        ho.port = 0;
        rc = httpd_new(&c->loop, &ho, &c->httpd);
    }
    if (rc) {
        fprintf(stderr, "preon mount: cannot listen on %s:%u: %s (another program there? pass --port N, or --port 0 "
                "for any free one; --listen ADDR for another address)\n", listen, ho.port, strerror(-rc));
        return rc;
    }
    *url = xasprintf(strchr(listen, ':') ? "http://[%s]:%u" : "http://%s:%u", listen, httpd_port(c->httpd));
    return 0;
}

static char *default_data_dir(void)
{
    const char *x = getenv("XDG_DATA_HOME");
    if (x && *x)
        return xasprintf("%s/preon", x);
    const char *home = getenv("HOME"); /* none under mount(8) or a system service: /var/lib/preon */
    return home && *home ? xasprintf("%s/.local/share/preon", home) : xstrdup("/var/lib/preon");
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v > max || s[0] == '-')
        return -EINVAL;
    *out = v;
    return 0;
}

/* Long options without a letter of their own. */
enum { OPT_HOST_CONNS = 256, OPT_HOST_CONNS_LOOPBACK, OPT_REQUEST_TIMEOUT };

static const struct option mount_opts[] = {
    {"foreground", no_argument, NULL, 'f'},  {"data", required_argument, NULL, 'd'},
    {"slots", required_argument, NULL, 's'}, {"quiet-ms", required_argument, NULL, 'q'},
    {"uid-base", required_argument, NULL, 'u'}, {"allow-network", no_argument, NULL, 'n'},
    {"ready-fd", required_argument, NULL, 'r'}, {"log", required_argument, NULL, 'l'},
    {"log-level", required_argument, NULL, 'L'}, {"help", no_argument, NULL, 'h'},
    {"listen", required_argument, NULL, 'A'}, {"port", required_argument, NULL, 'P'},
    {"tracker", required_argument, NULL, 'T'}, {"peer", required_argument, NULL, 'p'},
    {"pool", required_argument, NULL, 'o'}, {"lease-ms", required_argument, NULL, 'E'},
    {"discover-ms", required_argument, NULL, 'D'}, {"read-deadline-ms", required_argument, NULL, 'R'},
    {"max-remote-jobs", required_argument, NULL, 'J'}, {"max-mirror", required_argument, NULL, 'M'},
    {"max-live", required_argument, NULL, 'V'},
    {"trust", required_argument, NULL, 'K'}, {"host-budget", required_argument, NULL, 'H'},
    {"key-budget", required_argument, NULL, 'k'}, {"memory", required_argument, NULL, 'm'},
    {"disk", required_argument, NULL, 'S'}, {"cpu", required_argument, NULL, 'C'},
    {"no-disk-quota", no_argument, NULL, 'Z'},
    {"cache", required_argument, NULL, 'c'}, {"when", required_argument, NULL, 'W'},
    {"idle-after", required_argument, NULL, 'I'}, {"idle-cpu", required_argument, NULL, 'i'},
    {"idle-grace", required_argument, NULL, 'G'}, {"input-dir", required_argument, NULL, 'N'},
    {"host-conns", required_argument, NULL, OPT_HOST_CONNS},
    {"host-conns-loopback", no_argument, NULL, OPT_HOST_CONNS_LOOPBACK},
    {"request-timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT},
    {0}};

/* The daemon's log when it detached and --log did not say: DATA/preon.log, the previous one kept
 * as preon.log.1 once it is over PREON_LOG_ROTATE bytes (at each start). */
#define PREON_LOG_ROTATE (16 << 20)
static void default_log(const char *dd)
{
    char *path = xasprintf("%s/preon.log", dd), *old = xasprintf("%s/preon.log.1", dd);
    struct stat st;
    if (stat(path, &st) == 0 && st.st_size > PREON_LOG_ROTATE && rename(path, old) != 0)
        fprintf(stderr, "preon mount: cannot rotate %s: %s\n", path, strerror(errno));
    int rc = log_set_file(path);
    if (rc)
        fprintf(stderr, "preon mount: cannot log to %s: %s (pass --log FILE)\n", path, strerror(-rc));
    free(path);
    free(old);
}

/* The parent of a detaching peer: 0 once the daemon says the mount is ready; else the daemon's own
 * exit status (it said why on stderr, which it keeps until ready), or 1. */
static int detach_parent(pid_t pid, int fd)
{
    char b;
    ssize_t n;
    while ((n = read(fd, &b, 1)) < 0 && errno == EINTR)
        ;
    close(fd);
    if (n == 1)
        return 0;
    int st = 0;
    pid_t w;
    while ((w = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
        ;
    if (w == pid && WIFEXITED(st) && WEXITSTATUS(st) != 0)
        return WEXITSTATUS(st);
    if (w == pid && WIFSIGNALED(st))
        fprintf(stderr, "preon mount: the daemon was killed by signal %d before the mount was ready\n", WTERMSIG(st));
    else
        fprintf(stderr, "preon mount: the daemon ended before the mount was ready\n");
    return 1;
}

static int mount_main(int argc, char **argv, const char *mount_flags)
{
    const struct option *opts = mount_opts;
    bool fg = false;
    char *data = NULL;
    unsigned long slots = (unsigned long)uv_available_parallelism(), quiet = 1000, uid_base = 64000, v,
                  lease = 30000, discover = 1000, read_deadline = 120000, max_remote = 0, host_budget = 0,
                  key_budget = 0;
    uint64_t max_mirror = 0, max_live = 0, mem_total = 0, disk_total = 0, cache = 0;
    unsigned long cpu_pct = 0, idle_cpu = 25;
    uint64_t idle_after = 5 * 60000, idle_grace = 10 * 60000;
    bool when_idle = false;
    const char *input_dir = "/dev/input";
    long ready_fd = -1, port = -1;
    bool allow_net = false, log_given = false, no_disk_quota = false;
    const char *listen = "127.0.0.1", *tracker_url = NULL, *pool = NULL, *peers[64], *trust = NULL;
    size_t npeers = 0;
    httpd_opts_t hopt = {0}; /* --host-conns, --host-conns-loopback, --request-timeout */
    int c;
    int li = -1; /* the long option's index: its name for a message (argv may hold its value there) */
    while ((li = -1, c = getopt_long(argc, argv, "fh", opts, &li)) != -1) {
        int bad = 0;
        switch (c) {
        case OPT_HOST_CONNS: bad = parse_uint(optarg, 1000000, &v) || v == 0; hopt.max_host_conns = (unsigned)v; break;
        case OPT_HOST_CONNS_LOOPBACK: hopt.limit_loopback = true; break;
        case OPT_REQUEST_TIMEOUT:
            bad = parse_uint(optarg, HTTPD_MAX_TIMEOUT_S, &v) || v == 0;
            hopt.request_timeout_s = (unsigned)v;
            break;
        case 'f': fg = true; break;
        case 'd': free(data); data = xstrdup(optarg); break;
        case 's': bad = parse_uint(optarg, 1024, &slots); break;
        case 'q': bad = parse_uint(optarg, 3600000, &quiet); break;
        case 'u': bad = parse_uint(optarg, 4000000000ul, &uid_base) || uid_base == 0; break;
        case 'n': allow_net = true; break;
        case 'Z': no_disk_quota = true; break;
        case 'A': listen = optarg; break;
        case 'P': bad = parse_uint(optarg, 65535, &v); port = (long)v; break;
        case 'T': tracker_url = optarg; bad = strncmp(optarg, "http://", 7) != 0; break;
        case 'E': bad = parse_uint(optarg, 3600000, &lease) || lease < 300; break;
        case 'D': bad = parse_uint(optarg, 3600000, &discover) || discover < 100; break;
        case 'R': bad = parse_uint(optarg, 86400000, &read_deadline) || read_deadline < 100; break;
        case 'K': trust = optarg; bad = !*optarg; break; /* made absolute below: the daemon leaves the cwd */
        case 'J': bad = parse_uint(optarg, 1000000, &max_remote) || max_remote == 0; break;
        case 'H': bad = parse_uint(optarg, 1000000, &host_budget) || host_budget == 0; break;
        case 'k': bad = parse_uint(optarg, 1000000, &key_budget) || key_budget == 0; break;
        case 'M': bad = jobdesc_parse_size(optarg, &max_mirror) != 0 || max_mirror == 0; break;
        case 'V': bad = jobdesc_parse_size(optarg, &max_live) != 0 || max_live == 0; break;
        case 'm': bad = jobdesc_parse_size(optarg, &mem_total) != 0 || mem_total < (16ull << 20); break;
        case 'S': bad = jobdesc_parse_size(optarg, &disk_total) != 0 || disk_total == 0; break;
        case 'C': bad = parse_uint(optarg, 100, &cpu_pct) || cpu_pct == 0; break;
        case 'c': bad = jobdesc_parse_size(optarg, &cache) != 0 || cache < (1ull << 20); break;
        case 'W':
            when_idle = !strcmp(optarg, "idle");
            bad = !when_idle && strcmp(optarg, "always") != 0;
            break;
        case 'I': bad = jobdesc_parse_duration(optarg, &idle_after) != 0 || idle_after == 0; break;
        case 'i': bad = parse_uint(optarg, 100, &idle_cpu); break;
        case 'G': bad = jobdesc_parse_duration(optarg, &idle_grace) != 0; break;
        case 'N': input_dir = optarg; bad = !*optarg; break; /* made absolute below */
        case 'o': pool = optarg; bad = !*optarg || strlen(optarg) > 200; break;
        case 'p':
            bad = !wire_peer_url_ok(optarg, strlen(optarg)) || npeers == sizeof(peers) / sizeof(peers[0]);
            if (!bad)
                peers[npeers++] = optarg;
            break;
        case 'r': bad = parse_uint(optarg, INT_MAX, &v); ready_fd = (long)v; break;
        case 'l': bad = log_set_file(optarg) != 0; log_given = true; break;
        case 'L': { enum log_level l; bad = log_parse_level(optarg, &l); if (!bad) log_set_level(l); break; }
        case 'h': fputs(usage_mount, stdout); free(data); return 0;
        default: fputs(usage_mount, stderr); free(data); return 2;
        }
        if (bad) {
            fprintf(stderr, "preon mount: bad value for --%s: '%s'\n", li >= 0 ? opts[li].name : "?", optarg);
            free(data);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fputs(usage_mount, stderr);
        free(data);
        return 2;
    }
    if (geteuid() != 0) { /* else FUSE, the cgroups and the sandbox users each fail, each obscurely */
        fprintf(stderr, "preon mount: run it as root (for example: sudo preon mount ...): tasks run as sandbox "
                "users (uid %lu + slot), which takes root, and so do their cgroups and a mount they can read "
                "(docs/usage.md)\n", uid_base);
        free(data);
        return 1;
    }
    char mnt[PATH_MAX], dd[PATH_MAX], exe[PATH_MAX];
    if (!data)
        data = default_data_dir();
    if (!realpath(argv[optind], mnt)) {
        int err = errno;
        if (err == ENOENT)
            fprintf(stderr, "preon mount: the mount point %s does not exist: create it first (mkdir -p -- %s)\n",
                    argv[optind], argv[optind]);
        else
            fprintf(stderr, "preon mount: the mount point %s: %s\n", argv[optind], strerror(err));
        free(data);
        return 1;
    }
    /* The data directory and any missing parent (a fresh $HOME has no ~/.local/share): 0700 for
     * what we create, as the XDG base directory spec asks; fs_new creates the rest inside. */
    int mrc = files_mkdir_p(data, 0700);
    if (mrc || !realpath(data, dd)) {
        fprintf(stderr, "preon mount: cannot create the data directory %s: %s (pass --data DIR for another)\n", data,
                strerror(mrc ? -mrc : errno));
        free(data);
        return 1;
    }
    free(data);
    /* One peer per data directory and per mount point: a second would run the first's tasks, or
     * stack over it and hide it. The lock is held (and inherited by the daemon) until exit. */
    char *lockp = xasprintf("%s/lock", dd);
    long holder = 0;
    int lock_fd = -1, lrc = files_lock(lockp, &lock_fd, &holder);
    free(lockp);
    if (lrc == -EWOULDBLOCK) {
        fprintf(stderr, "preon mount: the data directory %s is in use by another peer (pid %ld); give this one "
                "its own (--data DIR), or stop that one first\n", dd, holder);
        return 1;
    }
    if (lrc) {
        fprintf(stderr, "preon mount: cannot lock the data directory %s: %s (a filesystem without file locks? pass "
                "--data DIR on a local disk)\n", dd, strerror(-lrc));
        return 1;
    }
    if (fs_mounted_live(mnt)) {
        fprintf(stderr, "preon mount: %s is already a mount point (a peer running there?): unmount it first "
                "(fusermount3 -u -- %s), or choose another directory\n", mnt, mnt);
        close(lock_fd);
        return 1;
    }
    if (mem_total || cpu_pct || when_idle) { /* said now, on the terminal: the daemon's stderr is /dev/null */
        char why[256];
        exec_opts_t eo = {.memory_total = mem_total, .cpu_permille = (unsigned)cpu_pct * 10, .suspend = when_idle};
        if (exec_check_cgroups(&eo, why, sizeof(why)) != 0) {
            fprintf(stderr, "preon mount: cannot %s: %s\n", when_idle && !mem_total && !cpu_pct ? "run tasks "
                    "--when idle" : "give tasks what --memory, --cpu or --when ask", why);
            close(lock_fd);
            return 1;
        }
    }
    char input_abs[PATH_MAX];
    if (when_idle) { /* the daemon leaves the cwd: an absolute path; a missing one is said, not fatal */
        if (!realpath(input_dir, input_abs))
            snprintf(input_abs, sizeof(input_abs), "%s", input_dir);
        input_dir = input_abs;
    }
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) {
        perror("preon mount: /proc/self/exe");
        return 1;
    }
    exe[n] = '\0';

    char *notify = sdnotify_take(); /* before any child is started: none inherits it */
    int pipefd[2] = {-1, -1};
    pid_t child;
    if (!fg && !log_given) /* the daemon has no terminal: its log goes somewhere to be read */
        default_log(dd);
    if (!fg) { /* detach: the parent exits once the child reports the mount is ready */
        if (pipe2(pipefd, O_CLOEXEC) != 0 || (child = fork()) < 0) {
            perror("preon mount: cannot detach");
            free(notify);
            return 1;
        }
        if (child > 0) {
            close(pipefd[1]);
            free(notify);
            return detach_parent(child, pipefd[0]);
        }
        close(pipefd[0]);
        setsid();
        char lb[24]; /* the lock is the daemon's now: its pid, for the message a second peer gets */
        int ln = snprintf(lb, sizeof(lb), "%ld\n", (long)getpid());
        if (ftruncate(lock_fd, 0) != 0 || pwrite(lock_fd, lb, (size_t)ln, 0) != ln)
            log_warn("%s/lock: cannot write the daemon's pid: %s", dd, strerror(errno));
        /* stdin and stdout now; stderr (the terminal, or mount(8)'s) once the mount is ready, so that
         * what stops the daemon before then (libfuse's and our messages) is seen where it was started */
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            close(null);
        }
    }
    signal(SIGPIPE, SIG_IGN);
    mount_ctx_t ctx = {.notify = notify};
    uv_loop_init(&ctx.loop);
    char *url = NULL;
    int rc = start_httpd(&ctx, hopt, listen, port, &url);
    if (!rc && !tracker_url) { /* the embedded tracker: a pool of one needs no configuration */
        tracker_opts_t to = {0};
        rc = tracker_start(&ctx.loop, ctx.httpd, &to, &ctx.tracker);
        if (rc)
            fprintf(stderr, "preon mount: embedded tracker: %s (pass --tracker URL to use another tracker)\n",
                    strerror(-rc));
    }
    char *own_tracker = url ? xasprintf("%s/announce", url) : NULL;
    char *trust_abs = NULL;
    if (trust && trust[0] != '/') {
        char cwd[PATH_MAX];
        trust_abs = getcwd(cwd, sizeof(cwd)) ? xasprintf("%s/%s", cwd, trust) : xstrdup(trust);
        trust = trust_abs;
    }
    fs_opts_t fo = {.mountpoint = mnt, .quiet_ms = quiet, .read_deadline_ms = read_deadline, .mount_flags = mount_flags,
                    .pool = {.data_dir = dd, .self_exe = exe, .slots = (unsigned)slots, .uid_base = (uid_t)uid_base,
                             .allow_network = allow_net, .httpd = ctx.httpd, .http_url = url, .peers = peers,
                             .n_peers = npeers, .pool = pool, .lease_ms = lease, .discover_ms = discover,
                             .max_remote_jobs = max_remote, .max_mirror_bytes = max_mirror, .max_live_bytes = max_live,
                             .trust_file = trust,
                             .host_budget = (uint32_t)host_budget, .key_budget = (uint32_t)key_budget,
                             .memory_total = mem_total, .disk_total = disk_total, .cache_bytes = cache,
                             .no_disk_quota = no_disk_quota,
                             .cpu_permille = (unsigned)cpu_pct * 10, .when_idle = when_idle,
                             .idle = {.input_dir = input_dir, .after_ms = idle_after,
                                      .cpu_permille = (unsigned)idle_cpu * 10, .grace_ms = idle_grace},
                             .tracker_url = tracker_url ? tracker_url : own_tracker,
                             .http_port = ctx.httpd ? httpd_port(ctx.httpd) : 0}};
    if (!rc)
        rc = fs_new(&ctx.loop, &fo, on_fs_exit, &ctx, &ctx.fs);
    if (!rc && ctx.tracker)
        log_info("embedded tracker at %s/announce", url);
    free(url);
    free(own_tracker);
    free(trust_abs); /* pool_new copied it */
    if (rc) {
        fprintf(stderr, "preon mount: could not start the peer: %s (the lines above say why)\n", strerror(-rc));
        if (ctx.tracker)
            tracker_close(ctx.tracker, NULL, NULL);
        if (ctx.httpd)
            httpd_close(ctx.httpd, NULL, NULL);
        uv_run(&ctx.loop, UV_RUN_DEFAULT);
        uv_loop_close(&ctx.loop);
        free(ctx.notify);
        return 1;
    }
    int sigs[2] = {SIGTERM, SIGINT};
    for (int i = 0; i < 2; i++) {
        uv_signal_init(&ctx.loop, &ctx.sig[i]);
        ctx.sig[i].data = &ctx;
        uv_signal_start(&ctx.sig[i], on_signal, sigs[i]);
    }
    if (ready_fd >= 0) {
        if (write((int)ready_fd, "ready\n", 6) != 6)
            log_warn("--ready-fd %ld: %s", ready_fd, strerror(errno));
        close((int)ready_fd);
    }
    if (pipefd[1] >= 0) {
        /* stderr let go first: once the parent has returned, nothing holds its terminal or pipe */
        int null = open("/dev/null", O_RDWR); /* the log goes on in DATA/preon.log or --log */
        if (null >= 0) {
            dup2(null, 2);
            close(null);
        }
        if (write(pipefd[1], "r", 1) != 1)
            log_warn("could not tell the parent we are ready");
        close(pipefd[1]);
    }
    int nrc = sdnotify_send(ctx.notify, "READY=1"); /* a systemd unit of Type=notify (dist/preon@.service) */
    if (nrc)
        log_warn("$NOTIFY_SOCKET %s: cannot tell systemd we are ready: %s", ctx.notify, strerror(-nrc));
    uv_run(&ctx.loop, UV_RUN_DEFAULT);
    uv_loop_close(&ctx.loop);
    free(ctx.notify);
    return ctx.status;
}

/* preon mount: -o lists become long options first (core/mntopt.h), then mount_main. */
static int cmd_mount(int argc, char **argv)
{
    mntopt_t mo;
    char why[256];
    if (mntopt_expand(argc, argv, mount_opts, &mo, why, sizeof(why)) != 0) {
        fprintf(stderr, "preon mount: %s\n", why);
        return 2;
    }
    int rc = mount_main(mo.argc, mo.argv, mo.flags);
    mntopt_release(&mo);
    return rc;
}

/* Called as a mount helper: `mount.fuse.preon SOURCE DIR -o OPTS` by mount(8), or `preon SOURCE DIR
 * -o OPTS` by mount.fuse3. Mounts as preon mount -o OPTS DIR does; detaches once mounted (mount(8)
 * waits for the helper to exit) unless the options say foreground. Exits as mount(8) reads a
 * helper's status (mount(8), "RETURN CODES"): 0, 1 for a wrong call or option or not being root,
 * 32 for a mount that failed. */
#define MOUNT_EX_USAGE 1
#define MOUNT_EX_FAIL 32
static int cmd_mount_helper(int argc, char **argv)
{
    mntopt_helper_t h;
    char why[256];
    if (mntopt_helper_parse(argc, argv, &h, why, sizeof(why)) != 0) {
        fprintf(stderr, "preon: %s\n", why);
        return MOUNT_EX_USAGE;
    }
    if (h.fake)
        return 0;
    if (!strncmp(h.dir, "/dev/fd/", 8)) { /* mount.fuse3 -o drop_privileges mounted it and passes its fd */
        fprintf(stderr, "preon: mount point %s: drop_privileges is not supported: a peer runs as root (its "
                "tasks' sandbox users and cgroups take it)\n", h.dir);
        return MOUNT_EX_USAGE;
    }
    if (geteuid() != 0) { /* a 'user' or 'users' line in /etc/fstab: mount(8) runs us as the user */
        fprintf(stderr, "preon: mount %s: a peer runs as root, not as uid %lu: a 'user' or 'users' fstab line "
                "lets a user call mount, but not start a peer; mount it as root (or enable the unit "
                "preon@.service, docs/usage.md)\n", h.dir, (unsigned long)geteuid());
        return MOUNT_EX_USAGE;
    }
    char *av[4 + 2 * (sizeof(h.opts) / sizeof(h.opts[0]))];
    int n = 0;
    av[n++] = "mount";
    for (size_t i = 0; i < h.nopts; i++) {
        av[n++] = "-o";
        av[n++] = (char *)h.opts[i];
    }
    av[n++] = "--";
    av[n++] = (char *)h.dir;
    av[n] = NULL;
    int rc = cmd_mount(n, av); /* 2: a bad option (usage), else 1: it did not mount */
    return rc == 0 ? 0 : rc == 2 ? MOUNT_EX_USAGE : MOUNT_EX_FAIL;
}

static const char usage_keygen[] =
    "usage: preon keygen [--out FILE]\n"
    "  makes a new Ed25519 key pair in FILE (mode 0600; never replaces a file) and prints its public key.\n"
    "  Default FILE: the key of the peer whose data directory is the default one (DATA/key), so that\n"
    "  its identity exists before its first mount (preon mount makes one itself otherwise).\n";

static const char usage_id[] =
    "usage: preon id [--data DIR | --key FILE]\n"
    "  prints the public key of DATA/key (default data directory as for preon mount) or of FILE.\n";

/* --out FILE / --data DIR / --key FILE: the one option these two commands take. */
static int key_path_arg(int argc, char **argv, const char *usage, bool allow_data, char **path)
{
    *path = NULL;
    for (int i = 1; i < argc; i++) {
        bool out = !strcmp(argv[i], "--out") || !strcmp(argv[i], "--key");
        bool data = allow_data && !strcmp(argv[i], "--data");
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 1;
        }
        if ((!out && !data) || i + 1 >= argc || *path || (!allow_data && strcmp(argv[i], "--out"))) {
            fputs(usage, stderr);
            free(*path);
            return 2;
        }
        *path = data ? xasprintf("%s/key", argv[++i]) : xstrdup(argv[++i]);
    }
    if (!*path) {
        char *d = default_data_dir();
        *path = xasprintf("%s/key", d);
        free(d);
    }
    return 0;
}

static int cmd_keygen(int argc, char **argv)
{
    char *path, why[512];
    int rc = key_path_arg(argc, argv, usage_keygen, false, &path);
    if (rc)
        return rc == 1 ? 0 : rc;
    char *dir = xstrdup(path), *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        files_mkdir_p(dir, 0700); /* a missing default data directory; a bad one fails below */
    }
    free(dir);
    keypair_t *k = NULL;
    rc = key_generate(&k);
    if (!rc && (rc = key_save(k, path, why, sizeof(why))) != 0)
        fprintf(stderr, "preon keygen: %s%s\n", why, rc == -EEXIST ? " (not replaced: remove it first)" : "");
    if (!rc) {
        key_pub_t pub;
        char hex[KEY_PUB_HEX_LEN + 1];
        key_public(k, &pub);
        key_pub_to_hex(&pub, hex);
        printf("%s\n", hex);
        fprintf(stderr, "preon keygen: wrote %s\n", path);
    }
    key_free(k);
    free(path);
    return rc ? 1 : 0;
}

static int cmd_id(int argc, char **argv)
{
    char *path, why[512];
    int rc = key_path_arg(argc, argv, usage_id, true, &path);
    if (rc)
        return rc == 1 ? 0 : rc;
    keypair_t *k = NULL;
    rc = key_load(path, &k, why, sizeof(why));
    if (rc) {
        fprintf(stderr, "preon id: %s%s\n", why,
                rc == -ENOENT ? " (preon mount makes the peer's key on its first start; or run preon keygen)" : "");
        free(path);
        return 1;
    }
    key_pub_t pub;
    char hex[KEY_PUB_HEX_LEN + 1];
    key_public(k, &pub);
    key_pub_to_hex(&pub, hex);
    printf("%s\n", hex);
    key_free(k);
    free(path);
    return 0;
}

static const char usage_sign[] =
    "usage: preon sign --key FILE --to KEY [--time MS] [--nonce HEX] METHOD TARGET\n"
    "       preon sign --key FILE --result JOB_ID TASK RESULT_ID EXIT\n"
    "  The second form prints a worker's signature of a result (a done report's rsig=).\n"
    "  prints the four header lines of a request signed by FILE's key for the peer whose key is KEY\n"
    "  (its GET /v1/id), TARGET being the path and query exactly as sent, e.g.\n"
    "  curl -H \"$line1\" ... http://host:port/v1/hello?peer=http://me:7650. Time: now; nonce: random.\n";

static int cmd_sign(int argc, char **argv)
{
    const char *keyfile = NULL, *to = NULL, *time_s = NULL, *nonce_s = NULL;
    int i = 1;
    if (argc == 8 && !strcmp(argv[1], "--key") && !strcmp(argv[3], "--result")) {
        unsigned long task, ex;
        bool neg = argv[7][0] == '-';
        if (strlen(argv[4]) != 64 || strlen(argv[6]) != 64 || parse_uint(argv[5], UINT32_MAX, &task) != 0 ||
            parse_uint(argv[7] + neg, 255, &ex) != 0 || (neg && ex != 1))
            return fputs(usage_sign, stderr), 2;
        char why[512], sig[KEY_SIG_HEX_LEN + 1];
        keypair_t *k;
        if (key_load(argv[2], &k, why, sizeof(why)) != 0)
            return fprintf(stderr, "preon sign: %s\n", why), 1;
        auth_result_sign(k, argv[4], (uint32_t)task, argv[6], neg ? -1 : (int)ex, sig);
        key_free(k);
        printf("%s\n", sig);
        return 0;
    }
    for (; i + 1 < argc && argv[i][0] == '-' && argv[i][1] == '-'; i += 2) {
        const char *o = argv[i];
        if (!strcmp(o, "--key"))
            keyfile = argv[i + 1];
        else if (!strcmp(o, "--to"))
            to = argv[i + 1];
        else if (!strcmp(o, "--time"))
            time_s = argv[i + 1];
        else if (!strcmp(o, "--nonce"))
            nonce_s = argv[i + 1];
        else
            break;
    }
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
        return fputs(usage_sign, stdout), 0;
    key_pub_t to_key;
    uint8_t nonce[AUTH_NONCE_LEN];
    unsigned long t = 0;
    if (!keyfile || !to || i + 2 != argc || key_pub_from_hex(to, strlen(to), &to_key) != 0 ||
        (time_s && parse_uint(time_s, ULONG_MAX, &t) != 0))
        return fputs(usage_sign, stderr), 2;
    if (nonce_s) {
        if (hash_hex_decode(nonce_s, strlen(nonce_s), nonce, sizeof(nonce)) != 0)
            return fputs(usage_sign, stderr), 2;
    } else if (getentropy(nonce, sizeof(nonce)) != 0) {
        return perror("preon sign: getentropy"), 1;
    }
    if (!time_s) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        t = (unsigned long)ts.tv_sec * 1000 + (unsigned long)ts.tv_nsec / 1000000;
    }
    char why[512];
    keypair_t *k;
    if (key_load(keyfile, &k, why, sizeof(why)) != 0)
        return fprintf(stderr, "preon sign: %s\n", why), 1;
    auth_headers_t h;
    int rc = auth_sign(k, argv[i], argv[i + 1], &to_key, t, nonce, &h);
    key_free(k);
    if (rc)
        return fprintf(stderr, "preon sign: a method or target that cannot be signed\n"), 2;
    printf("%s\n%s\n%s\n%s\n", h.key, h.time, h.nonce, h.sig);
    return 0;
}

static const char usage_endorse[] =
    "usage: preon endorse --key FILE [--days N] [--note TEXT] KEY\n"
    "  prints an endorsement of the public key KEY (a researcher's: their preon id) by FILE's key (a pool\n"
    "  authority's), valid for N days (default: no end). The researcher saves the line in a file in their\n"
    "  peer's DATA/endorsements/; every job they publish then carries it, and a volunteer that trusts the\n"
    "  authority's key (--trust FILE or DATA/trusted/) runs their jobs (docs/security.md).\n";

static int cmd_endorse(int argc, char **argv)
{
    const char *keyfile = NULL, *days_s = NULL, *note = NULL;
    int i = 1;
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
        return fputs(usage_endorse, stdout), 0;
    for (; i + 1 < argc && argv[i][0] == '-' && argv[i][1] == '-'; i += 2) {
        if (!strcmp(argv[i], "--key"))
            keyfile = argv[i + 1];
        else if (!strcmp(argv[i], "--days"))
            days_s = argv[i + 1];
        else if (!strcmp(argv[i], "--note"))
            note = argv[i + 1];
        else
            return fputs(usage_endorse, stderr), 2;
    }
    key_pub_t who;
    unsigned long days = 0;
    if (!keyfile || i + 1 != argc)
        return fputs(usage_endorse, stderr), 2;
    if (key_pub_from_hex(argv[i], strlen(argv[i]), &who) != 0)
        return fprintf(stderr, "preon endorse: '%s' is not a public key (64 hex digits, as preon id prints)\n",
                       argv[i]), 2;
    if (days_s && (parse_uint(days_s, 36500, &days) != 0 || days == 0))
        return fprintf(stderr, "preon endorse: --days: a whole number of days, 1..36500\n"), 2;
    if (note && strpbrk(note, "\n\r"))
        return fprintf(stderr, "preon endorse: --note: one line\n"), 2;
    char why[512];
    keypair_t *k;
    if (key_load(keyfile, &k, why, sizeof(why)) != 0)
        return fprintf(stderr, "preon endorse: %s\n", why), 1;
    uint64_t until = 0;
    if (days) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        until = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + (uint64_t)days * 86400000;
    }
    auth_endorsement_t e;
    auth_endorse(k, &who, until, &e);
    key_free(k);
    char line[AUTH_ENDORSE_LINE_MAX];
    auth_endorsement_format(&e, line, sizeof(line));
    printf("%s%s%s\n", line, note ? "  # " : "", note ? note : "");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_main, stderr);
        return 2;
    }
    static const char *const commands[] = {"mount", "wait", "status", "submit", "get", "tracker", "keygen", "id",
                                           "sign", "endorse", "limit", "--help", "-h", "help", "--version", NULL};
    if (mntopt_is_helper_call(argc, argv, commands))
        return cmd_mount_helper(argc, argv);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "mount"))
        return cmd_mount(argc - 1, argv + 1);
    if (!strcmp(cmd, "wait"))
        return fs_client_wait(argc - 1, argv + 1);
    if (!strcmp(cmd, "status"))
        return fs_client_status(argc - 1, argv + 1);
    if (!strcmp(cmd, "submit"))
        return fs_client_submit(argc - 1, argv + 1);
    if (!strcmp(cmd, "get"))
        return get_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "tracker"))
        return tracker_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "keygen"))
        return cmd_keygen(argc - 1, argv + 1);
    if (!strcmp(cmd, "id"))
        return cmd_id(argc - 1, argv + 1);
    if (!strcmp(cmd, "sign"))
        return cmd_sign(argc - 1, argv + 1);
    if (!strcmp(cmd, "endorse"))
        return cmd_endorse(argc - 1, argv + 1);
    if (!strcmp(cmd, "limit"))
        return exec_limit_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help"))
        return fputs(usage_main, stdout), 0;
    if (!strcmp(cmd, "--version"))
        return puts("preon 0.1"), 0;
    fprintf(stderr, "preon: unknown command '%s'\n%s", cmd, usage_main);
    return 2;
}
