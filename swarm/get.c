/*
 * get.c: `preon get`, the plain transfer: a job's file (or files) from the swarm straight to disk,
 * through the same engine as the mount's lazy reads (swarm/fetch.c), but with no mount, no store
 * and no reader in between.
 *
 * One loop, three steps. (1) The manifest: GET /v1/manifest/<id> from each given peer in turn
 * until one answers with bytes whose SHA-256 is the job id and that decode (every limit checked).
 * (2) The destination: a hidden temporary next to DEST (".NAME.preon-get.XXXXXX", a file or a
 * tree of empty files of their final sizes). (3) The blocks, in file order, at most GET_WINDOW at
 * once (so memory stays at that many block buffers whatever the size): fetch_block_data asks all
 * the peers at once (the fetcher spreads blocks over them and moves past bad or dead ones), hands
 * each block over in memory once its hash matched, and a thread-pool item pwrite()s it at its
 * offset; the buffer is released when the write is done. Nothing is read back and nothing is
 * hashed twice: the file is complete and verified when the last write returns, and only then is the
 * temporary renamed to DEST. On any failure (a block no peer could give, a write error, SIGINT)
 * the transfers are cancelled, the temporary is removed, and the exit status is 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "core/files.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/manifest.h"
#include "core/xalloc.h"
#include "swarm/fetch.h"
#include "swarm/get.h"

/** --peer options accepted. */
#define GET_MAX_PEERS 64
/** Blocks asked for or being written at once: bounds memory (block buffers) and open requests. */
#ifndef GET_WINDOW
#define GET_WINDOW 64
#endif

static const char usage[] =
    "usage: preon get --peer URL [--peer URL ...] JOB_ID[/PATH] DEST\n"
    "  Downloads the file PATH of job JOB_ID (or every file under the directory PATH, or the whole\n"
    "  job) from all the given peers at once, verifying every block, into DEST (a directory\n"
    "  DEST gets the file or tree inside it). DEST appears only once everything arrived verified.\n"
    "  --peer URL           a peer that holds the job, http://HOST:PORT (repeatable)\n"
    "  --log-level LEVEL    error, warn (default), info or debug\n";

typedef struct gblock gblock_t;

/*
 * A file being written. Its blocks are written by one thread-pool item at a time, each item taking
 * every block that arrived meanwhile: writes to one file serialise on its inode lock anyway, and
 * several threads waiting on it spin (a profile showed 5% of the CPU in rwsem_spin_on_owner).
 */
typedef struct gfile {
    size_t idx;  /* in man.files */
    char *tmp;   /* where it is written */
    int fd;      /* open while blocks are left to write, else -1 */
    size_t left; /* blocks not yet written */
    gblock_t *queue, **qtail; /* verified blocks waiting for the writer */
    gblock_t *writing;        /* the blocks the thread-pool item is writing */
    uv_work_t work;
    int rc;                   /* the item's result */
} gfile_t;

typedef struct getter {
    uv_loop_t loop;
    uv_signal_t sig[2];
    fetch_t *f;
    char *peers[GET_MAX_PEERS];
    size_t npeers, mpeer; /* mpeer: the peer asked for the manifest now */
    char mwhy[1024];      /* why each peer's manifest was refused */
    char id[HASH_HEX_LEN + 1];
    char *path; /* inside the job, or NULL for all of it */
    const char *dest;
    manifest_t man;
    gfile_t *files;
    size_t nfiles;
    size_t next_file, next_block; /* the next block to ask for */
    unsigned busy;                /* blocks asked for and not written yet */
    bool tree;                    /* tmp/final are directories */
    char *tmp, *final;
    int status; /* 0, or 1 once a failure was reported */
    bool finished, closing;
} getter_t;

struct gblock {
    getter_t *g;
    gfile_t *file;
    size_t block;
    const uint8_t *data; /* held from the fetcher until written */
    size_t len;
    gblock_t *next; /* in the file's queue */
};

static void pump(getter_t *g);
static void maybe_finish(getter_t *g);
static void stop(getter_t *g);

/*
 * Reports the first failure (later ones are consequences) and cancels the transfers under way
 * (their blocks end with -ECANCELED at once, instead of after a dead peer's time-out); writes
 * already in the thread pool finish, then the temporary is removed.
 */
__attribute__((format(printf, 2, 3))) static void fail(getter_t *g, const char *fmt, ...)
{
    if (g->status)
        return;
    g->status = 1;
    va_list ap;
    va_start(ap, fmt);
    fputs("preon get: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    stop(g);
}

static const char *fetch_error(int status)
{
    switch (status) {
    case -ENOENT: return "no peer has it";
    case -EBADMSG: return "the peers sent bytes that are not the block (corrupt)";
    case -ETIMEDOUT: return "the peers did not answer in time";
    case -EIO: return "the peers could not be reached, or failed";
    case -ECANCELED: return "interrupted";
    default: return strerror(-status);
    }
}

/* ---- the end ---- */

static void on_handle_closed(uv_handle_t *h) { (void)h; }

static void on_fetch_closed(void *arg)
{
    getter_t *g = arg;
    g->f = NULL;
    for (int i = 0; i < 2; i++)
        uv_close((uv_handle_t *)&g->sig[i], on_handle_closed);
}

/* Cancels every transfer (their callbacks then fire with -ECANCELED) and lets the loop end. */
static void stop(getter_t *g)
{
    if (g->closing)
        return;
    g->closing = true;
    fetch_close(g->f, on_fetch_closed, g);
}

static void file_close(getter_t *g, gfile_t *gf)
{
    if (gf->fd < 0)
        return;
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(gf->fd, (mode_t)(g->man.files[gf->idx].mode & 0777) & ~mask) != 0 && !g->status)
        fail(g, "%s: %s", gf->tmp, strerror(errno));
    if (close(gf->fd) != 0)
        fail(g, "%s: %s", gf->tmp, strerror(errno));
    gf->fd = -1;
}

/* Once nothing is under way: renames the temporary into place, or removes it after a failure. */
static void maybe_finish(getter_t *g)
{
    if (g->finished || g->busy > 0 || (!g->status && g->next_file < g->nfiles))
        return;
    g->finished = true;
    for (size_t i = 0; i < g->nfiles; i++) {
        if (g->files[i].fd >= 0 && g->status) {
            close(g->files[i].fd);
            g->files[i].fd = -1;
        }
        file_close(g, &g->files[i]);
    }
    if (!g->status && g->tmp) {
        /* a tree must not land inside (or replace) something that appeared meanwhile; a file
         * replaces DEST, as cp does */
        int rc = g->tree ? renameat2(AT_FDCWD, g->tmp, AT_FDCWD, g->final, RENAME_NOREPLACE)
                         : rename(g->tmp, g->final);
        if (rc != 0)
            fail(g, "cannot rename %s to %s: %s", g->tmp, g->final, strerror(errno));
    }
    if (g->status && g->tmp) {
        if (g->tree)
            files_rm_rf(g->tmp);
        else
            unlink(g->tmp);
    }
    stop(g);
}

/* ---- blocks ---- */

static int write_block(int fd, const gblock_t *b, uint32_t bs)
{
    uint64_t off = (uint64_t)b->block * bs;
    size_t done = 0;
    while (done < b->len) {
        ssize_t n = pwrite(fd, b->data + done, b->len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        done += (size_t)n;
    }
    return 0;
}

static void write_work(uv_work_t *w)
{
    gfile_t *gf = w->data;
    gf->rc = 0;
    for (gblock_t *b = gf->writing; b && !gf->rc; b = b->next)
        gf->rc = write_block(gf->fd, b, b->g->man.block_size);
}

static void write_start(getter_t *g, gfile_t *gf);

static void write_done(uv_work_t *w, int status)
{
    gfile_t *gf = w->data;
    getter_t *g = NULL;
    (void)status;
    gblock_t *b;
    while ((b = gf->writing)) {
        gf->writing = b->next;
        g = b->g;
        fetch_data_release(b->data);
        if (gf->rc)
            fail(g, "cannot write %s: %s", gf->tmp, strerror(-gf->rc));
        else if (--gf->left == 0)
            file_close(g, gf);
        g->busy--;
        free(b);
    }
    if (gf->queue)
        write_start(g, gf);
    pump(g);
}

/* Hands every queued block of gf to one thread-pool item, unless one is writing already. */
static void write_start(getter_t *g, gfile_t *gf)
{
    if (gf->writing || !gf->queue)
        return;
    gf->writing = gf->queue;
    gf->queue = NULL;
    gf->qtail = &gf->queue;
    gf->work.data = gf;
    /* uv_queue_work fails only for a NULL work callback */
    uv_queue_work(&g->loop, &gf->work, write_work, write_done);
}

static void on_block(const hash_t *h, int status, const uint8_t *data, size_t len, void *arg)
{
    gblock_t *b = arg;
    getter_t *g = b->g;
    const manifest_file_t *mf = &g->man.files[b->file->idx];
    (void)h;
    if (status == 0 && !data)
        status = -EPROTO; /* cannot happen without a store: the fetcher hands over every block */
    if (status || g->status) {
        if (status)
            fail(g, "%s: block %zu of %zu could not be had from any of %zu peers: %s", mf->path, b->block,
                 mf->n_blocks, g->npeers, fetch_error(status));
        g->busy--;
        free(b);
        pump(g);
        return;
    }
    fetch_data_hold(data);
    b->data = data;
    b->len = len;
    gfile_t *gf = b->file;
    if (!gf->qtail)
        gf->qtail = &gf->queue;
    *gf->qtail = b;
    gf->qtail = &b->next;
    write_start(g, gf);
}

/* Asks for the next blocks while the window allows, in file order. */
static void pump(getter_t *g)
{
    while (!g->status && g->busy < GET_WINDOW && g->next_file < g->nfiles) {
        gfile_t *gf = &g->files[g->next_file];
        const manifest_file_t *mf = &g->man.files[gf->idx];
        if (g->next_block >= mf->n_blocks) {
            g->next_file++;
            g->next_block = 0;
            continue;
        }
        if (gf->fd < 0 && (gf->fd = open(gf->tmp, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
            fail(g, "%s: %s", gf->tmp, strerror(errno));
            break;
        }
        size_t bi = g->next_block;
        uint32_t bs = g->man.block_size;
        uint32_t len = (uint32_t)((uint64_t)(bi + 1) * bs <= mf->size ? bs : mf->size - (uint64_t)bi * bs);
        gblock_t *b = xcalloc(1, sizeof(*b));
        *b = (gblock_t){.g = g, .file = gf, .block = bi};
        int rc = fetch_block_data(g->f, &mf->blocks[bi], len, (const char *const *)g->peers, g->npeers,
                                  on_block, b);
        if (rc) {
            free(b);
            fail(g, "%s: block %zu: %s", mf->path, bi, strerror(-rc));
            break;
        }
        g->busy++;
        g->next_block++;
    }
    maybe_finish(g);
}

/* ---- the destination ---- */

static char *path_join(const char *a, const char *b) { return xasprintf("%s/%s", a, b); }

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* "dir/.name.preon-get.XXXXXX" next to final, for mkstemp/mkdtemp. */
static char *tmp_template(const char *final)
{
    const char *slash = strrchr(final, '/');
    if (!slash)
        return xasprintf(".%s.preon-get.XXXXXX", final);
    return xasprintf("%.*s/.%s.preon-get.XXXXXX", (int)(slash - final), final, slash + 1);
}

/* Creates the file (size set, empty blocks as holes) that gf names, closed again. 0 or -errno. */
static int create_file(getter_t *g, gfile_t *gf)
{
    int fd = open(gf->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    int rc = ftruncate(fd, (off_t)g->man.files[gf->idx].size) == 0 ? 0 : -errno;
    gf->fd = fd;
    if (gf->left == 0) /* nothing to fetch: finished now */
        file_close(g, gf);
    return rc;
}

/* Picks the files, the final name and the temporary, and creates the latter. 0, or 1 (reported). */
static int prepare(getter_t *g)
{
    const manifest_t *m = &g->man;
    struct stat st;
    bool dest_dir = stat(g->dest, &st) == 0 && S_ISDIR(st.st_mode);
    const char *prefix = NULL; /* tree: files under it ("" for all) */
    ssize_t fi = g->path ? manifest_find(m, g->path) : -1;
    if (g->path && fi < 0) {
        for (size_t i = 0; i < m->n_dirs && !prefix; i++)
            if (strcmp(m->dirs[i], g->path) == 0)
                prefix = g->path;
        if (!prefix) {
            fail(g, "job %s has no file or directory '%s'", g->id, g->path);
            return 1;
        }
    } else if (!g->path) {
        prefix = "";
    }
    g->tree = prefix != NULL;
    const char *name = g->path ? base_name(g->path) : m->name;
    g->final = dest_dir ? path_join(g->dest, name) : xstrdup(g->dest);
    if (g->tree && lstat(g->final, &st) == 0) {
        fail(g, "%s exists already", g->final);
        return 1;
    }
    if (!g->tree && lstat(g->final, &st) == 0 && S_ISDIR(st.st_mode)) {
        fail(g, "%s is a directory", g->final);
        return 1;
    }
    g->tmp = tmp_template(g->final);

    if (!g->tree) {
        int fd = mkstemp(g->tmp);
        if (fd < 0) {
            fail(g, "cannot create a file next to %s: %s", g->final, strerror(errno));
            free(g->tmp);
            g->tmp = NULL;
            return 1;
        }
        g->files = xcalloc(1, sizeof(*g->files));
        g->nfiles = 1;
        g->files[0] = (gfile_t){.idx = (size_t)fi, .tmp = xstrdup(g->tmp), .fd = fd,
                                .left = m->files[fi].n_blocks};
        if (ftruncate(fd, (off_t)m->files[fi].size) != 0) {
            fail(g, "%s: %s", g->tmp, strerror(errno));
            return 1;
        }
        if (g->files[0].left == 0)
            file_close(g, &g->files[0]);
        return 0;
    }

    if (!mkdtemp(g->tmp)) {
        fail(g, "cannot create a directory next to %s: %s", g->final, strerror(errno));
        free(g->tmp);
        g->tmp = NULL;
        return 1;
    }
    mode_t mask = umask(0);
    umask(mask);
    chmod(g->tmp, 0777 & ~mask); /* mkdtemp made it 0700: the tree gets what mkdir would give */
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < m->n_dirs; i++) {
        const char *d = m->dirs[i];
        if (plen && (strncmp(d, prefix, plen) != 0 || d[plen] != '/'))
            continue;
        char *p = path_join(g->tmp, d + (plen ? plen + 1 : 0));
        mkdir(p, 0777); /* dirs are sorted: parents first; a failure shows when a file is created */
        free(p);
    }
    g->files = xcalloc(m->n_files ? m->n_files : 1, sizeof(*g->files));
    for (size_t i = 0; i < m->n_files; i++) {
        const char *p = m->files[i].path;
        if (plen && (strncmp(p, prefix, plen) != 0 || p[plen] != '/'))
            continue;
        const char *rel = p + (plen ? plen + 1 : 0);
        gfile_t *gf = &g->files[g->nfiles++];
        *gf = (gfile_t){.idx = i, .tmp = path_join(g->tmp, rel), .fd = -1, .left = m->files[i].n_blocks};
        const char *slash = strrchr(rel, '/');
        if (slash) { /* its parents; a failure shows when the file is created */
            char *dir = xasprintf("%s/%.*s", g->tmp, (int)(slash - rel), rel);
            files_mkdir_p(dir, 0777);
            free(dir);
        }
        int rc = create_file(g, gf);
        if (rc) {
            fail(g, "cannot create %s: %s", gf->tmp, strerror(-rc));
            return 1;
        }
    }
    return 0;
}

/* ---- the manifest ---- */

static void ask_manifest(getter_t *g);

static void on_manifest(int status, unsigned code, const char *body, size_t len, void *arg)
{
    getter_t *g = arg;
    char why[256] = "", dwhy[200];
    if (g->closing)
        return;
    if (status) {
        snprintf(why, sizeof(why), "%s", status == -EIO         ? "no answer (refused or reset)"
                                         : status == -ETIMEDOUT ? "no answer in time"
                                         : status == -EMSGSIZE  ? "a manifest too large"
                                                                : strerror(-status));
    } else if (code == 404) {
        snprintf(why, sizeof(why), "does not have the job");
    } else if (code != 200) {
        snprintf(why, sizeof(why), "HTTP %u", code);
    } else {
        hash_t want, got;
        hash_from_hex(g->id, HASH_HEX_LEN, &want);
        manifest_id(body, len, &got);
        if (!hash_equal(&want, &got))
            snprintf(why, sizeof(why), "sent a manifest whose SHA-256 is not the job id");
        else if (manifest_decode(&g->man, body, len, dwhy, sizeof(dwhy)) != 0) {
            snprintf(why, sizeof(why), "sent a bad manifest: %s", dwhy);
            manifest_release(&g->man);
            manifest_init(&g->man);
        }
    }
    if (why[0]) {
        size_t n = strlen(g->mwhy);
        snprintf(g->mwhy + n, sizeof(g->mwhy) - n, "%s%s: %s", n ? "; " : "", g->peers[g->mpeer], why);
        g->mpeer++;
        ask_manifest(g);
        return;
    }
    if (prepare(g) != 0) {
        g->next_file = g->nfiles; /* nothing more to ask for */
        maybe_finish(g);
        return;
    }
    pump(g);
}

static void ask_manifest(getter_t *g)
{
    /* manifests past FETCH_MAX_GET_BODY (a job of ~60k files of 256 KiB) cannot be fetched yet */
    size_t cap = MANIFEST_MAX_BYTES < FETCH_MAX_GET_BODY ? MANIFEST_MAX_BYTES : FETCH_MAX_GET_BODY;
    for (; g->mpeer < g->npeers; g->mpeer++) {
        char *url = xasprintf("%s/v1/manifest/%s", g->peers[g->mpeer], g->id);
        int rc = fetch_get(g->f, url, cap, on_manifest, g);
        free(url);
        if (rc == 0)
            return;
        size_t n = strlen(g->mwhy);
        snprintf(g->mwhy + n, sizeof(g->mwhy) - n, "%s%s: %s", n ? "; " : "", g->peers[g->mpeer],
                 strerror(-rc));
    }
    g->finished = true; /* nothing was created */
    fail(g, "no peer gave the manifest of job %s: %s", g->id, g->mwhy);
}

/* ---- the command ---- */

static void on_signal(uv_signal_t *s, int signum)
{
    getter_t *g = s->data;
    fail(g, "interrupted by signal %d", signum); /* cancels what is under way, then cleans up */
}

/* "http://host:port" without trailing slashes, or NULL. */
static char *peer_arg(const char *s)
{
    size_t n = strlen(s);
    if (strncmp(s, "http://", 7) != 0 || n > FETCH_MAX_PEER_URL)
        return NULL;
    while (n > 7 && s[n - 1] == '/')
        n--;
    if (n == 7)
        return NULL;
    return xasprintf("%.*s", (int)n, s);
}

int get_main(int argc, char **argv)
{
    static const struct option opts[] = {{"peer", required_argument, NULL, 'p'},
                                         {"log-level", required_argument, NULL, 'L'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    getter_t *g = xcalloc(1, sizeof(*g));
    int c, rc = 2;
    log_set_level(LOG_LEVEL_WARN);
    manifest_init(&g->man);
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (g->npeers == GET_MAX_PEERS) {
                fprintf(stderr, "preon get: at most %d --peer\n", GET_MAX_PEERS);
                goto out;
            }
            if (!(g->peers[g->npeers] = peer_arg(optarg))) {
                fprintf(stderr, "preon get: bad value for --peer: '%s' (want http://HOST:PORT)\n", optarg);
                goto out;
            }
            g->npeers++;
            break;
        case 'L': {
            enum log_level l;
            if (log_parse_level(optarg, &l) != 0) {
                fprintf(stderr, "preon get: bad value for --log-level: '%s'\n", optarg);
                goto out;
            }
            log_set_level(l);
            break;
        }
        case 'h': fputs(usage, stdout); rc = 0; goto out;
        default: fputs(usage, stderr); goto out;
        }
    }
    if (optind != argc - 2 || g->npeers == 0) {
        if (g->npeers == 0 && optind == argc - 2)
            fputs("preon get: give at least one --peer\n", stderr);
        fputs(usage, stderr);
        goto out;
    }
    const char *what = argv[optind];
    g->dest = argv[optind + 1];
    hash_t id;
    if (strlen(what) < HASH_HEX_LEN || (what[HASH_HEX_LEN] && what[HASH_HEX_LEN] != '/') ||
        hash_from_hex(what, HASH_HEX_LEN, &id) != 0) {
        fprintf(stderr, "preon get: '%s' does not start with a job id (64 hex digits)\n", what);
        goto out;
    }
    hash_to_hex(&id, g->id);
    if (what[HASH_HEX_LEN] == '/') {
        size_t n = strlen(what + HASH_HEX_LEN + 1);
        while (n > 0 && what[HASH_HEX_LEN + n] == '/')
            n--; /* "dir/" names the directory */
        g->path = xasprintf("%.*s", (int)n, what + HASH_HEX_LEN + 1);
        if (!*g->path) {
            free(g->path);
            g->path = NULL;
        } else if (manifest_check_path(g->path) != 0) {
            fprintf(stderr, "preon get: '%s' is not a path inside a job\n", g->path);
            goto out;
        }
    }

    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&g->loop);
    int err = fetch_new(&g->loop, NULL, NULL, &g->f);
    if (err) {
        fprintf(stderr, "preon get: cannot start the fetcher: %s\n", strerror(-err));
        uv_loop_close(&g->loop);
        rc = 1;
        goto out;
    }
    int sigs[2] = {SIGINT, SIGTERM};
    for (int i = 0; i < 2; i++) {
        uv_signal_init(&g->loop, &g->sig[i]);
        g->sig[i].data = g;
        uv_signal_start(&g->sig[i], on_signal, sigs[i]);
    }
    ask_manifest(g);
    uv_run(&g->loop, UV_RUN_DEFAULT);
    uv_loop_close(&g->loop);
    rc = g->status ? 1 : 0;

out:
    for (size_t i = 0; i < g->nfiles; i++)
        free(g->files[i].tmp);
    free(g->files);
    for (size_t i = 0; i < g->npeers; i++)
        free(g->peers[i]);
    manifest_release(&g->man);
    free(g->path);
    free(g->tmp);
    free(g->final);
    free(g);
    return rc;
}
