/*
 * serve.c: answers /v1/block/<hash> and /v1/have/<job id> from an index of where blocks are.
 *
 * A registration (reg_t) copies what serving needs from a manifest: the file paths and sizes, and
 * every block hash in manifest order (the "bit" of a block is its index in that order, which is
 * also its position in the /v1/have bitfield). The index is an open-addressing table of
 * (registration, file, block) entries keyed by the block's hash, which lives in the registration;
 * a hash may have several entries (the same block in two files, two jobs, a job and a result),
 * so a lookup walks every entry of its probe run. Registrations are appended to it; removing one
 * rebuilds it (rare: a job going away, a result replaced).
 *
 * Thread-pool items (work_t) own copies of what they read (a path, an offset, the expected hash);
 * those that read a registration's own fields (a result's re-hash, a have scan) hold it (refs), so
 * a registration removed meanwhile is freed when the last such item returns. serve_close waits for every item before freeing s: the have scan reads the store.
 * Even an input's or a stored block's open() goes to the thread pool: a path lookup is cheap while
 * the directory is in the dentry cache, but a cold one waits for the disk, and the loop must not.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/xalloc.h"
#include "swarm/serve.h"

#define SERVE_FIRST_SLOTS 1024
#define SERVE_CACHE "public, max-age=31536000, immutable"

enum reg_kind { REG_INPUTS, REG_STORE, REG_RESULT };
enum have_state { HAVE_UNKNOWN, HAVE_SCANNING, HAVE_KNOWN };

typedef struct rfile {
    char *path;     /* relative to the registration's root */
    uint64_t size;
    uint32_t first; /* bit of its first block */
    uint32_t n_blocks;
} rfile_t;

typedef struct parked {
    struct parked *next;
    httpd_req_t *req; /* deferred */
} parked_t;

typedef struct reg {
    struct reg *next; /* s->regs */
    enum reg_kind kind;
    void *owner;
    char id[HASH_HEX_LEN + 1]; /* jobs */
    char *root;                /* NULL for REG_STORE */
    uint32_t block_size;
    rfile_t *files;
    size_t n_files;
    hash_t *blocks; /* every block, in manifest order */
    uint32_t n_blocks;
    /* REG_STORE: which blocks the store holds */
    enum have_state have;
    uint8_t *bits; /* HAVE_KNOWN: the bitfield; HAVE_SCANNING: blocks stored since the scan began */
    uint32_t held;
    parked_t *parked; /* /v1/have requests waiting for the scan */
    unsigned refs;    /* thread-pool items that use it */
    bool gone;        /* removed: freed when refs drops to 0 */
} reg_t;

typedef struct entry {
    reg_t *reg; /* NULL: an empty slot */
    uint32_t file, block;
} entry_t;

enum work_kind { W_OPEN, W_RESULT, W_SCAN };

typedef struct work {
    uv_work_t w;
    serve_t *s;
    enum work_kind kind;
    reg_t *reg;
    httpd_req_t *req; /* W_OPEN, W_RESULT: the deferred request */
    /* W_OPEN (path: an input's file, or NULL: the store only), W_RESULT */
    char *path;
    uint64_t off;
    size_t len;
    hash_t h;
    char *buf;
    int fd;          /* W_OPEN: opened, sent by the reply (-1: none, or given away) */
    uint64_t fd_len; /* W_OPEN: the bytes of fd to send */
    /* W_SCAN: the worker's bitfield */
    uint8_t *bits;
    uint32_t held;
    int rc;
} work_t;

struct serve {
    uv_loop_t *loop;
    store_t *store;
    reg_t *regs;
    entry_t *slots;
    size_t cap, n; /* cap: 0 or a power of two, at least twice n */
    bool dirty;    /* registrations were removed: rebuild before the next use */
    unsigned works;
    uv_timer_t timer; /* only closed, to free s after the loop has had its turn */
    bool closing;
    void (*close_cb)(void *arg);
    void *close_arg;
    serve_stats_t st;
    void (*tally)(void *owner, uint64_t bytes, void *arg); /* serve_set_tally */
    void *tally_arg;
    metrics_rate_t rate; /* bytes answered, by second (the status page's rate out) */
};

/* ---- errors ---- */

static void reply_error(httpd_req_t *r, unsigned status, const char *msg)
{
    char body[128];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\"}", msg); /* msg: our own constants */
    httpd_reply(r, status, "application/json", body, (size_t)n);
}

/* ---- the index ---- */

static size_t slot_of(const hash_t *h, size_t mask)
{
    uint64_t k;
    memcpy(&k, h->b, sizeof(k)); /* a SHA-256 is uniform: its first bytes are a fine hash */
    return (size_t)k & mask;
}

static const hash_t *entry_hash(const entry_t *e)
{
    return &e->reg->blocks[e->reg->files[e->file].first + e->block];
}

static void index_put(serve_t *s, reg_t *g, uint32_t file, uint32_t block)
{
    size_t mask = s->cap - 1;
    const hash_t *h = &g->blocks[g->files[file].first + block];
    size_t i = slot_of(h, mask);
    while (s->slots[i].reg)
        i = (i + 1) & mask;
    s->slots[i] = (entry_t){.reg = g, .file = file, .block = block};
    s->n++;
}

static void index_add(serve_t *s, reg_t *g)
{
    for (size_t f = 0; f < g->n_files; f++)
        for (uint32_t b = 0; b < g->files[f].n_blocks; b++)
            index_put(s, g, (uint32_t)f, b);
}

/* Rebuilt from the registrations that stay, into a table sized for need more entries. */
static void index_rebuild(serve_t *s, size_t need)
{
    size_t total = need;
    for (reg_t *g = s->regs; g; g = g->next)
        total += g->n_blocks;
    size_t cap = SERVE_FIRST_SLOTS;
    while (cap < 2 * total)
        cap *= 2;
    free(s->slots);
    s->slots = xcalloc(cap, sizeof(*s->slots));
    s->cap = cap;
    s->n = 0;
    s->dirty = false;
    for (reg_t *g = s->regs; g; g = g->next)
        index_add(s, g);
}

/* Calls fn for every entry of *h, in probe order, until it returns true; that entry, or NULL. */
static entry_t *index_find(serve_t *s, const hash_t *h, bool (*fn)(const entry_t *e, void *arg), void *arg)
{
    if (s->dirty)
        index_rebuild(s, 0);
    if (!s->cap)
        return NULL;
    size_t mask = s->cap - 1;
    for (size_t i = slot_of(h, mask); s->slots[i].reg; i = (i + 1) & mask)
        if (hash_equal(entry_hash(&s->slots[i]), h) && fn(&s->slots[i], arg))
            return &s->slots[i];
    return NULL;
}

/* ---- registrations ---- */

static void reg_free(reg_t *g)
{
    for (size_t f = 0; f < g->n_files; f++)
        free(g->files[f].path);
    free(g->files);
    free(g->blocks);
    free(g->bits);
    free(g->root);
    free(g);
}

static void reg_unref(reg_t *g)
{
    if (--g->refs == 0 && g->gone)
        reg_free(g);
}

/* Answers (and forgets) every /v1/have parked on g. */
static void reg_unpark(reg_t *g, unsigned status, const char *msg)
{
    parked_t *p;
    while ((p = g->parked)) {
        g->parked = p->next;
        reply_error(p->req, status, msg);
        free(p);
    }
}

static bool id_ok(const char *id)
{
    hash_t h;
    return id && strlen(id) == HASH_HEX_LEN && hash_from_hex(id, HASH_HEX_LEN, &h) == 0;
}

static int reg_add(serve_t *s, enum reg_kind kind, const char *id, const manifest_t *m, const char *root,
                   void *owner)
{
    if (!s || !m || (kind != REG_STORE && !root) || (kind != REG_RESULT && !id_ok(id)))
        return -EINVAL;
    uint64_t total = 0;
    for (size_t f = 0; f < m->n_files; f++)
        total += m->files[f].n_blocks;
    if (total > UINT32_MAX / 2)
        return -EMSGSIZE;
    reg_t *g = xcalloc(1, sizeof(*g));
    g->kind = kind;
    g->owner = owner;
    if (id)
        memcpy(g->id, id, HASH_HEX_LEN + 1);
    g->root = root ? xstrdup(root) : NULL;
    g->block_size = m->block_size;
    g->n_files = m->n_files;
    g->files = m->n_files ? xcalloc(m->n_files, sizeof(*g->files)) : NULL;
    g->n_blocks = (uint32_t)total;
    g->blocks = total ? xcalloc(total, sizeof(*g->blocks)) : NULL;
    uint32_t k = 0;
    for (size_t f = 0; f < m->n_files; f++) {
        const manifest_file_t *mf = &m->files[f];
        g->files[f] = (rfile_t){.path = xstrdup(mf->path), .size = mf->size, .first = k,
                                .n_blocks = (uint32_t)mf->n_blocks};
        if (mf->n_blocks) /* an empty file has no blocks (and maybe no array) */
            memcpy(&g->blocks[k], mf->blocks, mf->n_blocks * sizeof(hash_t));
        k += (uint32_t)mf->n_blocks;
    }
    g->next = s->regs;
    s->regs = g;
    if (s->dirty || s->cap < 2 * (s->n + total)) {
        index_rebuild(s, 0); /* g is on the list already */
    } else {
        index_add(s, g);
    }
    return 0;
}

int serve_add_job(serve_t *s, const char *job_id, const manifest_t *m, const char *root, void *owner)
{
    return reg_add(s, root ? REG_INPUTS : REG_STORE, job_id, m, root, owner);
}

int serve_add_result(serve_t *s, const manifest_t *m, const char *root, void *owner)
{
    return reg_add(s, REG_RESULT, NULL, m, root, owner);
}

void serve_remove(serve_t *s, void *owner)
{
    bool any = false;
    for (reg_t **pp = &s->regs; *pp;) {
        reg_t *g = *pp;
        if (g->owner != owner) {
            pp = &g->next;
            continue;
        }
        *pp = g->next;
        any = true;
        reg_unpark(g, 404, "no such job");
        g->gone = true;
        if (g->refs == 0)
            reg_free(g);
    }
    if (any)
        s->dirty = true; /* rebuilt when next used: a run of removals costs one rebuild */
}

static void set_bit(uint8_t *bits, uint32_t k) { bits[k / 8] |= (uint8_t)(0x80u >> (k % 8)); }
static bool has_bit(const uint8_t *bits, uint32_t k) { return bits[k / 8] & (0x80u >> (k % 8)); }

static bool note_stored(const entry_t *e, void *arg)
{
    reg_t *g = e->reg;
    (void)arg;
    uint32_t k = g->files[e->file].first + e->block;
    if (g->kind == REG_STORE && g->bits && !has_bit(g->bits, k)) {
        set_bit(g->bits, k);
        if (g->have == HAVE_KNOWN)
            g->held++;
    }
    return false; /* every entry of the hash */
}

void serve_block_stored(serve_t *s, const hash_t *h)
{
    if (s && h)
        index_find(s, h, note_stored, NULL);
}

/* ---- thread-pool items ---- */

static work_t *work_new(enum work_kind kind, reg_t *reg)
{
    work_t *w = xcalloc(1, sizeof(*w));
    w->kind = kind;
    w->reg = reg;
    w->fd = -1;
    return w;
}

static void work_start(serve_t *s, work_t *w, uv_work_cb fn, uv_after_work_cb done)
{
    w->w.data = w;
    w->s = s;
    s->works++;
    if (w->reg)
        w->reg->refs++;
    /* uv_queue_work fails only for a NULL work callback */
    int rc = uv_queue_work(s->loop, &w->w, fn, done);
    if (rc < 0) {
        log_error("serve: uv_queue_work: %s", uv_strerror(rc));
        abort();
    }
}

static void on_closed(uv_handle_t *h)
{
    serve_t *s = h->data;
    void (*cb)(void *) = s->close_cb;
    void *arg = s->close_arg;
    free(s);
    if (cb)
        cb(arg);
}

static void work_end(work_t *w)
{
    serve_t *s = w->s;
    if (w->reg)
        reg_unref(w->reg);
    if (w->fd >= 0)
        close(w->fd); /* not sent: the server is closing */
    free(w->path);
    free(w->buf);
    free(w->bits);
    free(w);
    if (--s->works == 0 && s->closing)
        uv_close((uv_handle_t *)&s->timer, on_closed);
}

/* ---- /v1/block ---- */

/* Reads a result's block and checks it still hashes to its name. */
static void result_work(uv_work_t *uw)
{
    work_t *w = uw->data;
    w->buf = xmalloc(w->len ? w->len : 1);
    w->rc = -ENOENT;
    int fd = open(w->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return;
    size_t got = 0;
    while (got < w->len) {
        ssize_t n = pread(fd, w->buf + got, w->len - got, (off_t)(w->off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (got != w->len)
        return;
    hash_t h;
    hash_sha256(w->buf, w->len, &h);
    w->rc = hash_equal(&h, &w->h) ? 0 : -EBADMSG;
}

static void result_done(uv_work_t *uw, int status)
{
    work_t *w = uw->data;
    serve_t *s = w->s;
    (void)status; /* items are never cancelled */
    if (s->closing) {
        reply_error(w->req, 503, "shutting down");
    } else if (w->rc) {
        log_warn("%s changed since it was hashed; block not served", w->path);
        reply_error(w->req, 404, "block not held here");
    } else {
        s->st.blocks++;
        s->st.bytes += w->len;
        metrics_rate_add(&s->rate, w->len, uv_now(s->loop));
        httpd_reply_header(w->req, "Cache-Control", SERVE_CACHE);
        httpd_reply_take(w->req, 200, "application/octet-stream", w->buf, w->len);
        w->buf = NULL;
    }
    work_end(w);
}

static bool is_inputs(const entry_t *e, void *arg) { return (void)arg, e->reg->kind == REG_INPUTS; }
static bool is_result(const entry_t *e, void *arg) { return (void)arg, e->reg->kind == REG_RESULT; }

/* The byte range of block e (offset, length) within its file. */
static void entry_range(const entry_t *e, uint64_t *off, uint64_t *len)
{
    const rfile_t *f = &e->reg->files[e->file];
    uint32_t bs = e->reg->block_size;
    *off = (uint64_t)e->block * bs;
    *len = f->size - *off < bs ? f->size - *off : bs;
}

/* Opens an input's file (at the block's offset), or failing that the stored block. */
static void open_work(uv_work_t *uw)
{
    work_t *w = uw->data;
    if (w->path) {
        w->fd = open(w->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        w->fd_len = w->len;
    }
    if (w->fd < 0 && w->s->store && store_open_block(w->s->store, &w->h, &w->fd) == 0) {
        struct stat st;
        w->off = 0;
        w->fd_len = fstat(w->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    }
}

static void open_done(uv_work_t *uw, int status)
{
    work_t *w = uw->data;
    serve_t *s = w->s;
    (void)status; /* items are never cancelled */
    if (s->closing) {
        reply_error(w->req, 503, "shutting down"); /* work_end closes the fd */
    } else if (w->fd < 0) {
        reply_error(w->req, 404, "block not held here");
    } else {
        s->st.blocks++;
        s->st.bytes += w->fd_len;
        metrics_rate_add(&s->rate, w->fd_len, uv_now(s->loop));
        httpd_reply_header(w->req, "Cache-Control", SERVE_CACHE);
        httpd_reply_fd(w->req, 200, "application/octet-stream", w->fd, w->off, w->fd_len);
        w->fd = -1; /* the reply's now (closed once sent, or on error) */
    }
    work_end(w);
}

static void serve_block(serve_t *s, httpd_req_t *r, const char *hex)
{
    hash_t h;
    if (strlen(hex) != HASH_HEX_LEN || hash_from_hex(hex, HASH_HEX_LEN, &h) != 0)
        return reply_error(r, 400, "a block is named by 64 hex digits");
    work_t *w;
    uint64_t len = 0;
    const entry_t *e = index_find(s, &h, is_inputs, NULL);
    if (e) {
        /* the path is copied: the item needs no hold on the registration */
        w = work_new(W_OPEN, NULL);
        w->path = xasprintf("%s/%s", e->reg->root, e->reg->files[e->file].path);
        entry_range(e, &w->off, &len);
    } else if ((e = index_find(s, &h, is_result, NULL))) {
        w = work_new(W_RESULT, e->reg);
        w->path = xasprintf("%s/%s", e->reg->root, e->reg->files[e->file].path);
        entry_range(e, &w->off, &len);
    } else if (s->store) {
        w = work_new(W_OPEN, NULL);
    } else {
        return reply_error(r, 404, "block not held here");
    }
    w->len = (size_t)len;
    w->h = h;
    if (e && s->tally)
        s->tally(e->reg->owner, len, s->tally_arg);
    w->req = httpd_defer(r);
    if (w->kind == W_RESULT)
        work_start(s, w, result_work, result_done);
    else
        work_start(s, w, open_work, open_done);
}

/* ---- /v1/have ---- */

static void reply_bits(httpd_req_t *r, const uint8_t *bits, uint32_t n, uint32_t held)
{
    char num[24];
    snprintf(num, sizeof(num), "%u", n);
    httpd_reply_header(r, "Preon-Blocks", num);
    snprintf(num, sizeof(num), "%u", held);
    httpd_reply_header(r, "Preon-Held", num);
    httpd_reply(r, 200, "application/octet-stream", bits, (n + 7) / 8);
}

static void scan_work(uv_work_t *uw)
{
    work_t *w = uw->data;
    reg_t *g = w->reg; /* its blocks never change while it lives, and w holds it */
    w->bits = xcalloc(g->n_blocks / 8 + 1, 1);
    for (uint32_t k = 0; k < g->n_blocks; k++) {
        if (store_has(w->s->store, &g->blocks[k])) {
            set_bit(w->bits, k);
            w->held++;
        }
    }
}

static void scan_done(uv_work_t *uw, int status)
{
    work_t *w = uw->data;
    reg_t *g = w->reg;
    (void)status;
    if (!g->gone && !w->s->closing) {
        /* blocks stored during the scan were noted in g->bits: merge */
        uint32_t held = 0;
        for (uint32_t k = 0; k < g->n_blocks; k++) {
            if (has_bit(g->bits, k))
                set_bit(w->bits, k);
            held += has_bit(w->bits, k);
        }
        free(g->bits);
        g->bits = w->bits;
        w->bits = NULL;
        g->held = held;
        g->have = HAVE_KNOWN;
        parked_t *p;
        while ((p = g->parked)) {
            g->parked = p->next;
            reply_bits(p->req, g->bits, g->n_blocks, g->held);
            free(p);
        }
    }
    work_end(w);
}

static void serve_have(serve_t *s, httpd_req_t *r, const char *id)
{
    reg_t *g = s->regs;
    while (g && (g->kind == REG_RESULT || strcmp(g->id, id) != 0))
        g = g->next;
    if (!g)
        return reply_error(r, 404, "no such job");
    if (g->kind == REG_INPUTS) {
        uint8_t *bits = xcalloc(g->n_blocks / 8 + 1, 1);
        for (uint32_t k = 0; k < g->n_blocks; k++)
            set_bit(bits, k);
        reply_bits(r, bits, g->n_blocks, g->n_blocks);
        free(bits);
        return;
    }
    if (g->have == HAVE_KNOWN)
        return reply_bits(r, g->bits, g->n_blocks, g->held);
    if (!s->store) {
        g->bits = xcalloc(g->n_blocks / 8 + 1, 1);
        g->have = HAVE_KNOWN;
        return reply_bits(r, g->bits, g->n_blocks, 0);
    }
    parked_t *p = xcalloc(1, sizeof(*p));
    p->req = httpd_defer(r);
    p->next = g->parked;
    g->parked = p;
    if (g->have == HAVE_UNKNOWN) {
        g->have = HAVE_SCANNING;
        g->bits = xcalloc(g->n_blocks / 8 + 1, 1); /* notes blocks stored during the scan */
        work_start(s, work_new(W_SCAN, g), scan_work, scan_done);
    }
}

bool serve_handle(serve_t *s, httpd_req_t *r, const char *path)
{
    bool ours = strncmp(path, "/block/", 7) == 0 || strncmp(path, "/have/", 6) == 0;
    if (ours && s->closing) {
        reply_error(r, 503, "shutting down");
        return true;
    }
    if (strncmp(path, "/block/", 7) == 0) {
        serve_block(s, r, path + 7);
        return true;
    }
    if (strncmp(path, "/have/", 6) == 0) {
        serve_have(s, r, path + 6);
        return true;
    }
    return false;
}

/* ---- life ---- */

int serve_new(uv_loop_t *loop, store_t *store, serve_t **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!loop)
        return -EINVAL;
    serve_t *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->store = store;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    *out = s;
    return 0;
}

void serve_close(serve_t *s, void (*cb)(void *arg), void *arg)
{
    if (!s || s->closing)
        return;
    s->closing = true;
    s->close_cb = cb;
    s->close_arg = arg;
    reg_t *g;
    while ((g = s->regs)) {
        s->regs = g->next;
        reg_unpark(g, 503, "shutting down");
        g->gone = true;
        if (g->refs == 0)
            reg_free(g);
    }
    free(s->slots);
    s->slots = NULL;
    s->cap = s->n = 0;
    if (s->works == 0)
        uv_close((uv_handle_t *)&s->timer, on_closed);
}

void serve_stats(const serve_t *s, serve_stats_t *out)
{
    *out = s ? s->st : (serve_stats_t){0};
    if (s)
        out->rate = metrics_rate_get(&s->rate, uv_now(s->loop));
}

void serve_set_tally(serve_t *s, void (*tally)(void *owner, uint64_t bytes, void *arg), void *arg)
{
    s->tally = tally;
    s->tally_arg = arg;
}
