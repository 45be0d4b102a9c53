/*
 * jobs.c: the life of a job on this peer, on the loop thread.
 *
 * staging (a directory being copied into jobs/) -> quiet period -> publishing (hashing in the thread
 * pool) -> running (tasks handed to the sandbox, slots permitting) -> done | failed; or rejected (a
 * bad description: stays writable so it can be fixed in place), or cancelled (rm -r jobs/<name>).
 * Every state change that must survive a crash is written to the database before it is shown.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/files.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "fs/internal.h"
#include "fs/work.h"

uint64_t fs__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const char *fs__job_state_name(job_state_t s)
{
    static const char *const names[] = {"staging", "publishing", "rejected", "running", "done", "failed",
                                        "cancelled"};
    return names[s];
}

job_t *fs__job_by_id(fs_t *fs, const char *id)
{
    for (job_t *j = fs->joblist; j; j = j->next)
        if (j->published && !j->gone && strcmp(j->id, id) == 0)
            return j;
    return NULL;
}

job_t *fs__job_find(fs_t *fs, const char *name)
{
    for (job_t *j = fs->joblist; j; j = j->next)
        if (!j->gone && strcmp(j->name, name) == 0)
            return j;
    return NULL;
}

bool fs__job_over(const job_t *j)
{
    return j->state == J_DONE || j->state == J_FAILED || j->state == J_CANCELLED || j->state == J_REJECTED;
}

void fs__job_ref(job_t *j) { j->refs++; }

static void job_free(job_t *j)
{
    fs_t *fs = j->fs;
    for (job_t **pp = &fs->joblist; *pp; pp = &(*pp)->next) {
        if (*pp == j) {
            *pp = j->next;
            break;
        }
    }
    for (size_t i = 0; i < j->n_fail_lines; i++)
        free(j->fail_lines[i]);
    free(j->fail_lines);
    free(j->task_ms);
    free(j->dispatch_t0);
    free(j->dispatch_ms);
    for (size_t i = 0; i < j->n_peers; i++)
        free(j->peers[i]);
    free(j->peers);
    fs__res_free(j);
    manifest_release(&j->man);
    free(j->reason);
    free(j->unfit);
    free(j->publishing);
    free(j->name);
    free(j);
}

void fs__job_unref(job_t *j)
{
    if (--j->refs == 0 && j->gone && !j->quiet)
        job_free(j);
}

static void quiet_closed(uv_handle_t *h)
{
    job_t *j = h->data;
    free(h);
    j->quiet = NULL;
    if (j->gone && j->refs == 0)
        job_free(j);
}

void fs__job_wake(job_t *j)
{
    if (!j->waiters)
        return;
    size_t len;
    char *text = fs__job_status_text(j, &len);
    while (j->waiters) {
        waiter_t *w = j->waiters;
        j->waiters = w->next;
        fs__wait_reply(w, text, len);
        free(w);
    }
    free(text);
}

static void on_interrupt(fuse_req_t req, void *data)
{
    waiter_t *target = data;
    job_t *j = target->job;
    for (waiter_t **pp = &j->waiters; *pp; pp = &(*pp)->next) {
        if (*pp == target) {
            *pp = target->next;
            fuse_reply_err(req, EINTR);
            free(target);
            return;
        }
    }
}

void fs__wait_park(job_t *j, fuse_req_t req, size_t size, off_t off, struct wait_fh *fh)
{
    waiter_t *w = xcalloc(1, sizeof(*w));
    *w = (waiter_t){.req = req, .size = size, .off = off, .fh = fh, .job = j, .next = j->waiters};
    j->waiters = w;
    fuse_req_interrupt_func(req, on_interrupt, w); /* may call on_interrupt at once */
}

/* Removing a tree can take long (a job of 100k files): the thread pool does it. The names are never
 * reused (a job id is new on every publish), so nothing waits for them to go. b may be NULL. */
typedef struct rmwork {
    uv_work_t req;
    fs_t *fs;
    char *a, *b;
} rmwork_t;

static void rm_work(uv_work_t *req)
{
    rmwork_t *w = req->data;
    files_rm_rf(w->a);
    if (w->b)
        files_rm_rf(w->b);
}

static void rm_done(uv_work_t *req, int status)
{
    rmwork_t *w = req->data;
    w->fs->pending_work--;
    free(w->a);
    free(w->b);
    free(w);
}

void fs__rm_later(fs_t *fs, char *a, char *b)
{
    rmwork_t *w = xcalloc(1, sizeof(*w));
    w->req.data = w;
    w->fs = fs;
    w->a = a;
    w->b = b;
    fs->pending_work++;
    uv_queue_work(fs->loop, &w->req, rm_work, rm_done);
}

/* Forgets a job entirely: its nodes, records and results. */
static void job_forget(job_t *j)
{
    fs_t *fs = j->fs;
    if (j->gone)
        return;
    fs__job_wake(j);
    if (j->dir)
        fs__node_detach(fs, j->dir);
    if (j->results)
        fs__node_detach(fs, j->results);
    if (j->status)
        fs__node_detach(fs, j->status);
    if (j->wait)
        fs__node_detach(fs, j->wait);
    j->dir = j->results = j->status = j->wait = NULL;
    if (j->published) {
        fs__blocks_remove_job(fs, j);
        coord_remove_job(fs->coord, j->id);
        db_job_delete(fs->db, j->id);
        fs__rm_later(fs, xasprintf("%s/results/%s", fs->data_dir, j->id), xasprintf("%s/inputs/%s", fs->data_dir, j->id));
    }
    j->gone = true;
    if (j->quiet) {
        uv_close((uv_handle_t *)j->quiet, quiet_closed);
        return;
    }
    if (j->refs == 0)
        job_free(j);
}

static job_t *job_alloc(fs_t *fs, const char *name, job_state_t state)
{
    job_t *old = fs__job_find(fs, name);
    if (old)
        job_forget(old); /* a finished job of the same name is replaced by the new one */
    job_t *j = xcalloc(1, sizeof(*j));
    j->fs = fs;
    j->name = xstrdup(name);
    j->state = state;
    manifest_init(&j->man);
    j->status = fs__node_new(fs, fs->statusdir, name, N_STATUS, j);
    j->wait = fs__node_new(fs, fs->waitdir, name, N_WAIT, j);
    job_t **pp = &fs->joblist;
    while (*pp)
        pp = &(*pp)->next;
    *pp = j;
    return j;
}

static void arm_quiet(job_t *j, uint64_t ms);

job_t *fs__job_new_staging(fs_t *fs, const char *name)
{
    char *path = xasprintf("%s/staging/%s", fs->data_dir, name);
    int rc = mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : -errno;
    free(path);
    if (rc) {
        log_error("creating the staging directory of %s: %s", name, strerror(-rc));
        return NULL;
    }
    job_t *j = job_alloc(fs, name, J_STAGING);
    j->dir = fs__node_new(fs, fs->jobs, name, N_STAGE, j);
    fs__job_touch(j);
    return j;
}

static void set_reason(job_t *j, const char *why)
{
    free(j->reason);
    j->reason = why ? xstrdup(why) : NULL;
}

void fs__job_forget_remote(job_t *j)
{
    log_info("job %s (%s): its submitter %s no longer lists it; it is removed here", j->name, j->id, j->peers[0]);
    for (running_t *r = j->fs->running; r; r = r->next) /* tasks it was running for it stop */
        if (r->job == j && r->et)
            exec_task_cancel(r->et);
    j->state = J_CANCELLED;
    set_reason(j, "removed: its submitter no longer lists it");
    job_forget(j);
}

/* ---- publishing ---- */

typedef struct pubwork {
    uv_work_t req;
    job_t *job;
    uint64_t gen;
    char *root;
    manifest_t man;
    int rc;
    char why[512];
} pubwork_t;

static void publish_work(uv_work_t *req)
{
    pubwork_t *pw = req->data;
    pw->rc = fs__publish_scan(pw->root, &pw->man, pw->why, sizeof(pw->why));
}

/* Turns the staging tree's nodes into the published tree (the kernel may hold some of them). */
static node_t *pub_path_node(fs_t *fs, job_t *j, const char *path, node_kind_t kind)
{
    node_t *cur = j->dir;
    char *copy = xstrdup(path), *save = NULL;
    for (char *part = strtok_r(copy, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
        node_t *k = fs__node_child(cur, part);
        if (!k)
            k = fs__node_new(fs, cur, part, N_PUB_DIR, j);
        k->kind = N_PUB_DIR;
        cur = k;
    }
    free(copy);
    cur->kind = kind;
    return cur;
}

static void prune_stage_nodes(fs_t *fs, node_t *n)
{
    for (size_t i = n->nkids; i-- > 0;) {
        node_t *k = n->kids[i];
        if (k->kind == N_STAGE)
            fs__node_detach(fs, k);
        else
            prune_stage_nodes(fs, k);
    }
}

static void build_published_tree(fs_t *fs, job_t *j)
{
    if (!j->dir)
        j->dir = fs__node_new(fs, fs->jobs, j->name, N_PUB_DIR, j);
    j->dir->kind = N_PUB_DIR;
    for (size_t i = 0; i < j->man.n_dirs; i++)
        pub_path_node(fs, j, j->man.dirs[i], N_PUB_DIR);
    for (size_t i = 0; i < j->man.n_files; i++)
        pub_path_node(fs, j, j->man.files[i].path, N_PUB_FILE)->file = (int32_t)i;
    prune_stage_nodes(fs, j->dir);
    /* A remote job's results/ mirrors its submitter's (results.c); a local one's is on disk. */
    j->results = fs__node_new(fs, fs->results, j->name, j->remote ? N_RRES_DIR : N_RES, j);
    fs__blocks_add_job(fs, j); /* a remote job's blocks are served from the store once fetched */
}

void fs__job_add_remote(fs_t *fs, const char *id, manifest_t *m, const char *peer)
{
    char *name = fs__job_find(fs, m->name) || fs__node_child(fs->jobs, m->name)
                     ? xasprintf("%s@%.8s", m->name, id)
                     : xstrdup(m->name);
    if (fs__job_find(fs, name) || fs__node_child(fs->jobs, name)) {
        free(name);
        return;
    }
    char *res = xasprintf("%s/results/%s", fs->data_dir, id);
    files_mkdir_p(res, 0755);
    free(res);
    job_t *j = job_alloc(fs, name, J_RUNNING);
    free(name);
    manifest_release(&j->man);
    j->man = *m;
    manifest_init(m);
    memcpy(j->id, id, HASH_HEX_LEN + 1);
    j->published = true;
    j->remote = true;
    j->peers = xcalloc(1, sizeof(char *));
    j->peers[j->n_peers++] = xstrdup(peer);
    j->dir = fs__node_new(fs, fs->jobs, j->name, N_PUB_DIR, j);
    build_published_tree(fs, j);
    log_info("job %s (%s) from %s: %zu files", j->name, j->id, peer, j->man.n_files);
}

static void job_check_over(job_t *j);
static void fail_line(job_t *j, uint32_t task, const char *reason);

static void publish_done(uv_work_t *req, int status)
{
    pubwork_t *pw = req->data;
    job_t *j = pw->job;
    fs_t *fs = j->fs;
    fs->pending_work--;
    bool stale = j->gone || fs->stopping || pw->gen != j->gen || !j->dir || status != 0;
    if (stale) {
        if (!j->gone && j->state == J_PUBLISHING) {
            j->state = J_STAGING;
            arm_quiet(j, fs->opts.quiet_ms);
        }
    } else if (pw->rc) {
        j->state = J_REJECTED;
        set_reason(j, pw->why);
        log_error("job %s not published: %s", j->name, pw->why);
        fs__job_wake(j);
    } else {
        char *bytes = NULL;
        size_t len = 0;
        int rc = manifest_encode(&pw->man, &bytes, &len);
        hash_t id;
        if (!rc) {
            manifest_id(bytes, len, &id);
            hash_to_hex(&id, j->id);
            db_job_t row = {.id = j->id, .name = j->name, .state = DB_JOB_ACTIVE,
                            .created_ms = (int64_t)pw->man.created_ms, .manifest = bytes, .manifest_len = len};
            rc = db_job_insert(fs->db, &row);
        }
        if (!rc) {
            /* The hashed tree itself becomes the job's inputs: nothing is copied. */
            char *in = xasprintf("%s/inputs/%s", fs->data_dir, j->id);
            char *res = xasprintf("%s/results/%s", fs->data_dir, j->id);
            rc = rename(pw->root, in) == 0 ? files_mkdir_p(res, 0755) : -errno;
            free(in);
            free(res);
            if (rc)
                db_job_delete(fs->db, j->id);
        }
        if (!rc)
            rc = coord_add_job(fs->coord, j->id, pw->man.desc.tasks, 1); /* replicas: wired with trust */
        free(bytes);
        if (rc) {
            j->state = J_REJECTED;
            set_reason(j, "internal error while publishing (see the log)");
            log_error("job %s: publishing failed: %s", j->name, strerror(-rc));
            fs__job_wake(j);
        } else {
            manifest_release(&j->man);
            j->man = pw->man;
            manifest_init(&pw->man);
            j->published = true;
            j->state = J_RUNNING;
            set_reason(j, NULL);
            build_published_tree(fs, j);
            log_info("job %s published as %s: %zu files, %u tasks", j->name, j->id, j->man.n_files,
                     j->man.desc.tasks);
            fs__jobs_kick(fs);
            fs__vol_offer(fs, j, NULL); /* what local slots left, other peers get at once */
        }
    }
    manifest_release(&pw->man);
    free(pw->root);
    free(pw);
    fs__job_unref(j);
}

static void start_publish(job_t *j)
{
    fs_t *fs = j->fs;
    pubwork_t *pw = xcalloc(1, sizeof(*pw));
    pw->req.data = pw;
    pw->job = j;
    pw->gen = j->gen;
    pw->root = xasprintf("%s/staging/%s", fs->data_dir, j->name);
    manifest_init(&pw->man);
    pw->man.name = xstrdup(j->name);
    pw->man.created_ms = fs__now_ms();
    j->state = J_PUBLISHING;
    fs__job_ref(j);
    fs->pending_work++;
    uv_queue_work(fs->loop, &pw->req, publish_work, publish_done);
}

static void on_quiet(uv_timer_t *t)
{
    job_t *j = t->data;
    if (j->gone || j->open_files > 0 || !j->dir || j->name[0] == '.')
        return;
    if (j->state == J_STAGING || (j->state == J_REJECTED && j->publish_now))
        start_publish(j);
    j->publish_now = false;
}

static void arm_quiet(job_t *j, uint64_t ms)
{
    if (j->gone)
        return;
    if (!j->quiet) {
        j->quiet = xcalloc(1, sizeof(*j->quiet));
        uv_timer_init(j->fs->loop, j->quiet);
        j->quiet->data = j;
    }
    uv_timer_start(j->quiet, on_quiet, ms, 0);
}

void fs__job_touch(job_t *j)
{
    if (!j || j->published)
        return;
    j->gen++;
    j->last_change_ms = fs__now_ms();
    if (j->state == J_REJECTED) { /* being fixed: try again once quiet */
        j->state = J_STAGING;
        set_reason(j, NULL);
    }
    if (j->open_files == 0)
        arm_quiet(j, j->fs->opts.quiet_ms);
    else if (j->quiet)
        uv_timer_stop(j->quiet);
}

void fs__job_file_opened(job_t *j)
{
    j->open_files++;
    if (j->quiet)
        uv_timer_stop(j->quiet);
}

void fs__job_file_closed(job_t *j)
{
    if (j->open_files > 0 && --j->open_files == 0 && !j->published && !j->gone)
        arm_quiet(j, j->publish_now ? 0 : j->fs->opts.quiet_ms);
}

void fs__job_renamed(job_t *j, const char *newname)
{
    fs_t *fs = j->fs;
    bool from_dot = j->name[0] == '.';
    job_t *old = fs__job_find(fs, newname);
    if (old && old != j)
        job_forget(old);
    free(j->name);
    j->name = xstrdup(newname);
    fs__node_rename(j->dir, fs->jobs, newname);
    fs__node_rename(j->status, fs->statusdir, newname);
    fs__node_rename(j->wait, fs->waitdir, newname);
    j->gen++;
    if (from_dot && newname[0] != '.') {
        j->publish_now = true; /* a staged directory moved into place: it is complete */
        if (j->state == J_REJECTED)
            j->state = J_STAGING;
        if (j->open_files == 0)
            arm_quiet(j, 0);
    } else {
        fs__job_touch(j);
    }
}

void fs__job_unlink_dir(job_t *j)
{
    if (!j->published) {
        job_forget(j);
        return;
    }
    if (j->dir)
        fs__node_detach(j->fs, j->dir);
    j->dir = NULL;
}

/* ---- running tasks ---- */

static void fail_line(job_t *j, uint32_t task, const char *reason)
{
    char *line = xasprintf("%u %s", task, reason);
    if (!j->reason)
        j->reason = xasprintf("task %s", line);
    if (j->n_fail_lines < FS_MAX_FAIL_LINES) {
        j->fail_lines = xreallocarray(j->fail_lines, j->n_fail_lines + 1, sizeof(char *));
        j->fail_lines[j->n_fail_lines++] = line;
    } else {
        free(line);
    }
}

void fs__job_check_over(job_t *j) { job_check_over(j); }

static void job_check_over(job_t *j)
{
    fs_t *fs = j->fs;
    if (!j->published || j->state != J_RUNNING || !coord_job_over(fs->coord, j->id))
        return;
    coord_counts_t c;
    coord_counts(fs->coord, j->id, &c);
    j->state = c.succeeded == c.total ? J_DONE : J_FAILED;
    db_job_set_state(fs->db, j->id, j->state == J_DONE ? DB_JOB_DONE : DB_JOB_FAILED);
    log_info("job %s %s: %u succeeded, %u failed", j->name, fs__job_state_name(j->state), c.succeeded,
             c.failed);
    fs__job_wake(j);
}

typedef struct taskwork {
    uv_work_t req;
    running_t *r;
    exec_result_t res;
    collect_spec_t spec;
    char *tmp_dir, *final_dir;
    int rc;
    char why[256];
} taskwork_t;

static void running_free(running_t *r)
{
    fs_t *fs = r->fs;
    for (running_t **pp = &fs->running; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    fs->slot_busy[r->slot] = false;
    fs->nrunning--;
    free(r->work_dir);
    free(r->scratch_dir);
    free(r->out_path);
    free(r->err_path);
    fs__job_unref(r->job);
    free(r);
}

bool fs__task_report(job_t *j, uint32_t task, const char *worker, const char *result_id, bool ok)
{
    coord_verdict_t v = COORD_LATE;
    int rc = coord_report(j->fs->coord, j->id, task, worker, result_id, ok, &v);
    if (rc || v != COORD_ACCEPTED) {
        log_info("job %s task %u: the report of %s is %s: its result is not kept", j->name, task, worker,
                 rc ? strerror(-rc) : coord_verdict_name(v));
        return false;
    }
    return true;
}

void fs__task_finished(job_t *j, uint32_t task, bool ok, int exit_code, uint64_t elapsed_ms, const char *reason)
{
    fs_t *fs = j->fs;
    task_state_t st;
    uint32_t attempts = 0;
    coord_task(fs->coord, j->id, task, &st, &attempts);
    db_task_t row = {.job_id = j->id, .index = task, .state = st, .attempts = attempts, .exit_code = exit_code,
                     .elapsed_ms = (int64_t)elapsed_ms, .reason = ok ? NULL : reason};
    db_task_put(fs->db, &row);
    if (j->n_task_ms == j->cap_task_ms) {
        j->cap_task_ms = j->cap_task_ms ? j->cap_task_ms * 2 : 64;
        j->task_ms = xreallocarray(j->task_ms, j->cap_task_ms, sizeof(uint32_t));
    }
    j->task_ms[j->n_task_ms++] = elapsed_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)elapsed_ms;
    if (j->dispatch_t0 && j->dispatch_t0[task]) {
        uint64_t d = fs__now_ms() - j->dispatch_t0[task];
        j->dispatch_t0[task] = 0;
        if (j->n_dispatch_ms == j->cap_dispatch_ms) {
            j->cap_dispatch_ms = j->cap_dispatch_ms ? j->cap_dispatch_ms * 2 : 64;
            j->dispatch_ms = xreallocarray(j->dispatch_ms, j->cap_dispatch_ms, sizeof(uint32_t));
        }
        j->dispatch_ms[j->n_dispatch_ms++] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
    }
    fs__res_recorded(j, task, ok, exit_code);
    if (!ok) {
        fail_line(j, task, reason ? reason : "failed");
        log_warn("job %s task %u failed: %s", j->name, task, reason ? reason : "failed");
    }
    job_check_over(j);
}

static void collect_work(uv_work_t *req)
{
    taskwork_t *tw = req->data;
    tw->rc = fs__collect_results(&tw->spec, tw->why, sizeof(tw->why));
}

static void collect_done(uv_work_t *req, int status)
{
    taskwork_t *tw = req->data;
    running_t *r = tw->r;
    job_t *j = r->job;
    fs_t *fs = r->fs;
    fs->pending_work--;
    if (!j->gone && j->published && !fs->stopping) {
        const exec_result_t *res = &tw->res;
        bool ok = res->exit_code == 0 && !res->timed_out && !res->refused && !res->cancelled && tw->rc == 0;
        char reason[EXEC_MAX_REASON + 300];
        if (tw->rc)
            snprintf(reason, sizeof(reason), "%s", tw->why);
        else
            snprintf(reason, sizeof(reason), "%s", res->reason[0] ? res->reason : (ok ? "" : "failed"));
        if (r->remote)
            fs__vol_task_done(fs, j, r->task, res->exit_code, res->elapsed_ms, ok ? NULL : reason);
        else if (!res->cancelled && fs__task_report(j, r->task, FS_SELF, "local", ok))
            fs__task_finished(j, r->task, ok, res->exit_code, res->elapsed_ms, reason);
        /* cancelled: the core already says so */
        job_check_over(j);
    }
    free(tw->tmp_dir);
    free(tw->final_dir);
    free(tw);
    running_free(r);
    if (!fs->stopping)
        fs__jobs_kick(fs);
}

static void on_task_done(exec_task_t *t, const exec_result_t *res, void *arg)
{
    running_t *r = arg;
    fs_t *fs = r->fs;
    job_t *j = r->job;
    r->et = NULL;
    /* Stopping: not recorded, so it runs again after a restart. Cancelled: nothing to keep. */
    if (fs->stopping || j->gone || res->cancelled) {
        if (!fs->stopping) { /* in the thread pool; when stopping, the next start clears work/ */
            fs__rm_later(fs, xstrdup(r->work_dir), xstrdup(r->scratch_dir));
            fs__rm_later(fs, xstrdup(r->out_path), xstrdup(r->err_path));
        }
        running_free(r);
        return;
    }
    taskwork_t *tw = xcalloc(1, sizeof(*tw));
    tw->req.data = tw;
    tw->r = r;
    tw->res = *res;
    tw->tmp_dir = xasprintf("%s/results/%s/.%u.tmp", fs->data_dir, j->id, r->task);
    tw->final_dir = xasprintf("%s/results/%s/%u", fs->data_dir, j->id, r->task);
    tw->spec = (collect_spec_t){.work_dir = r->work_dir, .scratch_dir = r->scratch_dir, .out_path = r->out_path, .err_path = r->err_path,
                                .tmp_dir = tw->tmp_dir, .final_dir = tw->final_dir,
                                .outputs = j->man.desc.outputs, .n_outputs = j->man.desc.n_outputs,
                                .disk_bytes = j->man.desc.disk_bytes, .exit_code = res->exit_code};
    fs->pending_work++;
    uv_queue_work(fs->loop, &tw->req, collect_work, collect_done);
}

void fs__task_dispatched(job_t *j, uint32_t task)
{
    if (!j->dispatch_t0)
        j->dispatch_t0 = xcalloc(j->man.desc.tasks, sizeof(uint64_t));
    j->dispatch_t0[task] = fs__now_ms();
}

running_t *fs__start_task(fs_t *fs, job_t *j, uint32_t task, bool remote)
{
    unsigned slot = 0;
    while (slot < fs->opts.slots && fs->slot_busy[slot])
        slot++;
    running_t *r = xcalloc(1, sizeof(*r));
    r->fs = fs;
    r->job = j;
    r->task = task;
    r->slot = slot;
    r->remote = remote;
    r->last_renew_ms = fs__now_ms();
    /* Every run gets directories of its own (never a previous run's, which its task could have
     * filled with symlinks: root builds the skeleton in it). */
    uint64_t run = ++fs->stage_seq;
    r->work_dir = xasprintf("%s/work/%s.%u.%" PRIu64, fs->data_dir, j->id, task, run);
    r->scratch_dir = xasprintf("%s/work/%s.%u.%" PRIu64 ".ovl", fs->data_dir, j->id, task, run);
    r->out_path = xasprintf("%s/work/%s.%u.%" PRIu64 ".stdout", fs->data_dir, j->id, task, run);
    r->err_path = xasprintf("%s/work/%s.%u.%" PRIu64 ".stderr", fs->data_dir, j->id, task, run);
    fs__job_ref(j);
    if (!remote)
        fs__task_dispatched(j, task);
    fs->slot_busy[slot] = true;
    fs->nrunning++;
    r->next = fs->running;
    fs->running = r;
    /* The task's directories are made by the executor, in the thread pool (work/ is emptied at
     * start-up, and a task's directories are removed after each run). */
    char *job_dir = xasprintf("%s/jobs/%s", fs->mountpoint, j->name);
    /* The job's tree, for the skeleton of the task's upper layer: dirs first (sorted, so parents
     * before children), then files. */
    size_t nskel = j->man.n_dirs + j->man.n_files;
    exec_entry_t *skel = xcalloc(nskel ? nskel : 1, sizeof(*skel));
    for (size_t i = 0; i < j->man.n_dirs; i++)
        skel[i] = (exec_entry_t){.path = j->man.dirs[i], .mode = 0755, .dir = true};
    for (size_t i = 0; i < j->man.n_files; i++)
        skel[j->man.n_dirs + i] = (exec_entry_t){.path = j->man.files[i].path, .size = j->man.files[i].size,
                                                 .mode = j->man.files[i].mode};
    exec_spec_t spec = {.skeleton = skel, .n_skeleton = nskel,
                        .job_dir = job_dir, .task_dir = r->work_dir, .scratch_dir = r->scratch_dir, .command = j->man.desc.command,
                        .stdout_path = r->out_path, .stderr_path = r->err_path, .job_id = j->id,
                        .job_name = j->name, .task_index = task, .task_count = j->man.desc.tasks,
                        .timeout_ms = j->man.desc.timeout_ms, .memory_bytes = j->man.desc.memory_bytes,
                        .disk_bytes = j->man.desc.disk_bytes, .processes = j->man.desc.processes,
                        .network = j->man.desc.network, .slot = slot};
    int rc = exec_task_spawn(fs->exec, &spec, on_task_done, r, &r->et);
    free(job_dir);
    free(skel);
    if (rc) {
        exec_result_t res = {.exit_code = -1, .refused = true};
        snprintf(res.reason, sizeof(res.reason), "could not start the sandbox: %s", strerror(-rc));
        on_task_done(NULL, &res, r); /* r lives on until its collection is done */
    }
    return r;
}

/* Whether our own slots may run j; keeps j->unfit (the status says it) and logs a change. */
static bool fits_here(fs_t *fs, job_t *j)
{
    char why[160];
    if (fs__job_fits(fs, j, why, sizeof(why))) {
        free(j->unfit);
        j->unfit = NULL;
        return true;
    }
    if (!j->unfit || strcmp(j->unfit, why) != 0) {
        log_info("job %s: this peer's slots do not run it: %s", j->name, why);
        free(j->unfit);
        j->unfit = xstrdup(why);
    }
    return false;
}

/* Hands our free slots the waiting tasks of our own jobs, oldest job first, if this peer meets
 * their requirements (they apply to every slot, ours too); then volunteers for other peers' jobs. */
void fs__jobs_kick(fs_t *fs)
{
    uint32_t task;
    for (job_t *j = fs->joblist; j && !fs->stopping && fs->nrunning < fs->opts.slots; j = j->next) {
        if (!j->published || j->gone || j->remote || !coord_has_job(fs->coord, j->id))
            continue;
        coord_counts_t c;
        if (coord_counts(fs->coord, j->id, &c) != 0 || c.waiting == 0 || !fits_here(fs, j))
            continue;
        while (!fs->stopping && fs->nrunning < fs->opts.slots &&
               coord_lease(fs->coord, j->id, FS_SELF, fs__now_ms(), FS_LEASE_MS, NULL, &task) == 0) {
            if (!j->dir) {
                coord_verdict_t v;
                coord_report(fs->coord, j->id, task, FS_SELF, "no-job-dir", false, &v);
                continue;
            }
            fs__start_task(fs, j, task, false);
        }
    }
    fs__vol_kick(fs); /* slots left: ask other peers' jobs for work */
}

void fs__job_cancel(job_t *j, const char *why)
{
    fs_t *fs = j->fs;
    if (!j->published || fs__job_over(j))
        return;
    coord_cancel_job(fs->coord, j->id, fs__vol_cancel_lease, fs); /* volunteers are told to stop */
    for (running_t *r = fs->running; r; r = r->next)
        if (r->job == j && r->et)
            exec_task_cancel(r->et);
    j->state = J_CANCELLED;
    set_reason(j, why);
    db_job_set_state(fs->db, j->id, DB_JOB_CANCELLED);
    log_info("job %s %s", j->name, why);
    fs__job_wake(j);
}

/* ---- status text ---- */

typedef struct sb {
    char *p;
    size_t len, cap;
} sb_t;

__attribute__((format(printf, 2, 3))) static void sb_printf(sb_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (b->len + (size_t)n + 1 > b->cap) {
        b->cap = (b->len + (size_t)n + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* "<what>-p50: N" lines (p50, p95, max) of n samples, none if n is 0. */
static void percentiles(sb_t *b, const char *what, const uint32_t *samples, size_t n)
{
    if (n == 0)
        return;
    uint32_t *v = xreallocarray(NULL, n, sizeof(uint32_t));
    memcpy(v, samples, n * sizeof(uint32_t));
    qsort(v, n, sizeof(uint32_t), cmp_u32);
    sb_printf(b, "%s-p50: %u\n%s-p95: %u\n%s-max: %u\n", what, v[(n - 1) / 2], what, v[(n - 1) * 95 / 100], what,
              v[n - 1]);
    free(v);
}

char *fs__job_status_text(job_t *j, size_t *len)
{
    fs_t *fs = j->fs;
    sb_t b = {0};
    sb_printf(&b, "name: %s\n", j->name);
    if (j->published)
        sb_printf(&b, "id: %s\n", j->id);
    sb_printf(&b, "state: %s\n", fs__job_state_name(j->state));
    if (j->published) {
        coord_counts_t c = {0};
        if (j->remote)
            c = j->rcounts; /* as its submitter last reported them */
        else
            coord_counts(fs->coord, j->id, &c);
        sb_printf(&b, "tasks: %u\nwaiting: %u\nrunning: %u\nsucceeded: %u\nfailed: %u\ncancelled: %u\n", c.total,
                  c.waiting, c.running, c.succeeded, c.failed, c.cancelled);
        sb_printf(&b, "command: %s\n", j->man.desc.command);
        if (j->remote) {
            sb_printf(&b, "origin: remote (%zu peers hold it; first %s)\nresults-here: %u\n", j->n_peers,
                      j->peers[0], j->n_tres);
        } else if (j->unfit && c.waiting > 0) {
            sb_printf(&b, "why-waiting: this peer's slots cannot run it (%s)%s\n", j->unfit,
                      c.running ? "" : "; no volunteer has taken it either");
        }
        if (!j->remote && c.running > 0) {
            for (uint32_t t = 0; t < j->man.desc.tasks; t++) { /* one line per task a volunteer holds */
                const char *h[COORD_MAX_REPLICAS];
                size_t nh = coord_holders(fs->coord, j->id, t, h, COORD_MAX_REPLICAS);
                for (size_t i = 0; i < nh && i < COORD_MAX_REPLICAS; i++)
                    if (strcmp(h[i], FS_SELF) != 0)
                        sb_printf(&b, "leased-task: %u %s\n", t, h[i]);
            }
        }
        percentiles(&b, "task-ms", j->task_ms, j->n_task_ms);
        percentiles(&b, "dispatch-ms", j->dispatch_ms, j->n_dispatch_ms);
    }
    if (j->reason)
        sb_printf(&b, "reason: %s\n", j->reason);
    for (size_t i = 0; i < j->n_fail_lines; i++)
        sb_printf(&b, "failed-task: %s\n", j->fail_lines[i]);
    *len = b.len;
    return b.p ? b.p : xstrdup("");
}

char *fs__peer_status_text(fs_t *fs, size_t *len)
{
    sb_t b = {0};
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    unsigned counts[J_CANCELLED + 1] = {0};
    for (job_t *j = fs->joblist; j; j = j->next)
        if (!j->gone)
            counts[j->state]++;
    sb_printf(&b, "peer: %s\nmount: %s\ndata: %s\nslots: %u\nrunning-tasks: %u\n", host, fs->mountpoint,
              fs->data_dir, fs->opts.slots, fs->nrunning);
    for (int s = J_STAGING; s <= J_CANCELLED; s++)
        sb_printf(&b, "jobs-%s: %u\n", fs__job_state_name((job_state_t)s), counts[s]);
    sb_printf(&b, "pool-peers: %zu\n", fs->n_pool_peers);
    sb_printf(&b, "blocks: %llu\nblock-bytes: %llu\n", (unsigned long long)store_blocks(fs->store),
              (unsigned long long)store_bytes(fs->store));
    if (fs->opts.http_url) {
        serve_stats_t sst;
        serve_stats(fs->serve, &sst);
        sb_printf(&b, "http: %s\nblocks-served: %llu\nbytes-served: %llu\n", fs->opts.http_url,
                  (unsigned long long)sst.blocks, (unsigned long long)sst.bytes);
    }
    if (fs->fetch) {
        fetch_stats_t fst;
        fetch_stats(fs->fetch, &fst);
        sb_printf(&b, "blocks-fetched: %llu\nbytes-fetched: %llu\nbad-blocks-received: %llu\nfetches-in-flight: %u\n",
                  (unsigned long long)fst.blocks, (unsigned long long)fst.bytes, (unsigned long long)fst.bad,
                  fst.inflight);
    }
    sb_printf(&b, "loop-busy-max-ms: %.1f\nloop-stalls-over-5ms: %llu\n", (double)fs->lag_max_ns / 1e6,
              (unsigned long long)fs->lag_over_5ms);
    *len = b.len;
    return b.p;
}

/* ---- restart ---- */

static int restore_task(void *arg, const db_task_t *t)
{
    job_t *j = arg;
    if (coord_restore(j->fs->coord, j->id, t->index, (task_state_t)t->state, t->attempts) != 0)
        return 0;
    if (t->state == TASK_FAILED)
        fail_line(j, t->index, t->reason ? t->reason : "failed");
    if (t->state == TASK_SUCCEEDED || t->state == TASK_FAILED)
        fs__res_recorded(j, t->index, t->state == TASK_SUCCEEDED, t->exit_code);
    return 0;
}

static int restore_job(void *arg, const db_job_t *row)
{
    fs_t *fs = arg;
    char why[256];
    hash_t id;
    if (strlen(row->id) != HASH_HEX_LEN || hash_from_hex(row->id, HASH_HEX_LEN, &id) != 0 ||
        manifest_check_path(row->name) != 0 || strchr(row->name, '/')) {
        log_error("a job row in the database has a bad id or name and is skipped");
        return 0;
    }
    job_t *j = job_alloc(fs, row->name, J_RUNNING);
    int rc = manifest_decode(&j->man, row->manifest, row->manifest_len, why, sizeof(why));
    if (rc == 0)
        rc = coord_add_job(fs->coord, row->id, j->man.desc.tasks, 1);
    if (rc) {
        log_error("job %s (%s) in the database is unreadable and is dropped: %s", row->name, row->id,
                  rc == -EEXIST ? "duplicate" : why);
        job_forget(j);
        return 0;
    }
    memcpy(j->id, row->id, HASH_HEX_LEN);
    j->published = true;
    if (row->state != DB_JOB_CANCELLED) {
        j->dir = fs__node_new(fs, fs->jobs, j->name, N_PUB_DIR, j);
        build_published_tree(fs, j);
    } else {
        j->results = fs__node_new(fs, fs->results, j->name, N_RES, j);
    }
    db_tasks_load(fs->db, j->id, restore_task, j);
    if (row->state == DB_JOB_CANCELLED) {
        coord_cancel_job(fs->coord, j->id, NULL, NULL);
        j->state = J_CANCELLED;
        set_reason(j, "cancelled: removed from jobs/");
    } else {
        job_check_over(j);
    }
    return 0;
}

int fs__jobs_restore(fs_t *fs)
{
    int rc = db_jobs_load(fs->db, restore_job, fs);
    if (rc)
        return rc;
    char *dir = xasprintf("%s/staging", fs->data_dir);
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            job_t *j = fs__job_find(fs, de->d_name);
            if (j && j->published && j->dir) {
                /* Committed just before a crash, before its tree was moved to inputs/: move it now
                 * (it was not writable while it was being hashed). Otherwise it is a stale copy. */
                char *p = xasprintf("%s/%s", dir, de->d_name);
                char *in = xasprintf("%s/inputs/%s", fs->data_dir, j->id);
                struct stat st;
                if (stat(in, &st) != 0 && rename(p, in) == 0)
                    log_warn("job %s: moved its inputs into place after a crash", j->name);
                else
                    files_rm_rf(p);
                free(p);
                free(in);
                continue;
            }
            job_t *nj = job_alloc(fs, de->d_name, J_STAGING);
            nj->dir = fs__node_new(fs, fs->jobs, de->d_name, N_STAGE, nj);
            fs__job_touch(nj);
        }
        closedir(d);
    }
    free(dir);
    return 0; /* tasks start once the mount is up (fs_new kicks): they read their inputs through it */
}

void fs__jobs_free(fs_t *fs)
{
    while (fs->joblist) {
        job_t *j = fs->joblist;
        fs__job_wake(j);
        j->refs = 0;
        job_free(j);
    }
}
