/**
 * @file work.h  The blocking halves of publishing and result collection, run in the thread pool.
 * Pure of the loop: they touch only the files and the block store they are given.
 */
#ifndef PREON_POOL_WORK_H
#define PREON_POOL_WORK_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/manifest.h"
#include "swarm/store.h"

/**
 * Builds the manifest of the job directory root: reads preon.job (if any) into m->desc, walks the
 * tree (dot-names skipped; symlinks and special files refused) and hashes every file block by block
 * (a big file on two threads). The files are not copied: the caller keeps the tree, read-only, as the
 * job's verified inputs. m must be manifest_init'ed with name and created_ms set.
 * 0, or -EINVAL/-EMSGSIZE/-errno with why filled (a reason for the user).
 */
int pool__publish_scan(const char *root, manifest_t *m, char *why, size_t whylen);
/** The tree part of pool__publish_scan: hashes every file of root into m (files, dirs); with st, also
 * puts every block into the store (a volunteer's results, served to the submitter by hash). */
int pool__hash_tree(store_t *st, const char *root, manifest_t *m, char *why, size_t whylen);

typedef struct collect_spec {
    const char *work_dir;   /**< the task's directory (the upper layer of its /task) */
    const char *scratch_dir; /**< the overlay's work directory, removed with work_dir (may be NULL) */
    const char *run_dir;    /**< the run's directory that holds them, removed last (may be NULL) */
    const char *out_path;   /**< its stdout and stderr files */
    const char *err_path;
    const char *tmp_dir;    /**< where the result is assembled (same filesystem) */
    const char *final_dir;  /**< renamed into place at the end */
    char *const *outputs;   /**< patterns (fnmatch on the relative path); none: every file */
    size_t n_outputs;
    uint64_t disk_bytes;    /**< outputs larger in sum fail the task */
    int exit_code;
    const char *label;      /**< "job NAME task N": whose outputs the log says were not kept (NULL: "a task") */
} collect_spec_t;

/**
 * Moves the outputs (the files the task created or changed: unchanged inputs, whiteouts of deleted
 * ones and other special files are not outputs), stdout, stderr and an exit_code file into
 * final_dir. A file whose path no manifest can hold (not UTF-8, over MANIFEST_MAX_PATH bytes) or
 * with a reserved name (stdout, stderr, exit_code) is not kept, and the log says so (once, with the
 * first such path, its control bytes as '?').
 * 0 or -errno with why. An error of this peer's disk (pool__disk_fault: a write failed,
 * its disk is full, say): final_dir is left as it was and nothing of the result is anywhere. Any
 * other (-EFBIG: outputs over disk_bytes; an output the task named so that it cannot be moved): the
 * task's failure, and final_dir holds what was collected.
 */
int pool__collect_results(const collect_spec_t *c, char *why, size_t whylen);
/**
 * Whether rc (-errno) is this peer's disk failing (-ENOSPC, -EDQUOT, -EROFS, -EIO: the data
 * directory full, a filesystem gone read-only or failing), not anything a task can cause by what it
 * writes: only such an error gives a task back with no attempt counted. Pure.
 */
bool pool__disk_fault(int rc);

#define POOL_MAX_EXIT_CODE_BYTES 16 /* "-1\n" .. "255\n", with room */
/**
 * Whether a result manifest from another peer (a volunteer's, before a block of it is fetched) is
 * one the job's rules allow: every file other than stdout, stderr and exit_code matches the job's
 * outputs patterns (none: any), those outputs total at most the job's disk, stdout and stderr are
 * each at most the disk (the task's per-file limit), exit_code is a few bytes. 0, or -EINVAL /
 * -EFBIG with why filled. Pure.
 */
int pool__result_fits(const manifest_t *res, const jobdesc_t *d, char *why, size_t whylen);

/**
 * The task's checkpoint (docs/job-format.md, "Checkpoints"): moves the files the task wrote under
 * work_dir/checkpoint/ (not the unchanged inputs of a job that ships such a directory) into dest
 * (emptied first) and hashes them into m (manifest_init'ed, name and created_ms set; no store: the
 * files stay in dest and are served from there). Modes become 0644 or 0755. 0; -ENOENT if the
 * task left no file there; -EFBIG if they total over max_bytes (the job's disk); -errno; with why
 * filled for the last two. dest is removed on any error.
 */
int pool__ckpt_collect(const char *work_dir, const char *dest, uint64_t max_bytes, manifest_t *m, char *why,
                       size_t whylen);
/** Pure: whether a checkpoint manifest from another peer is one to take: at least one file, at most
 *  max_bytes (the job's disk) in all. 0, -EINVAL or -EFBIG with why. */
int pool__ckpt_fits(const manifest_t *m, uint64_t max_bytes, char *why, size_t whylen);
/**
 * Writes m's tree into dir (emptied first): each file from data (its files' bytes in manifest order,
 * already checked against m) or, with data NULL, block by block from the store st (which must hold
 * every block: verified when stored). With modes, an executable file becomes 0755 (else every file
 * is 0644 under the umask). 0 or -errno with why.
 */
int pool__files_write(store_t *st, const manifest_t *m, const char *data, const char *dir, bool modes, char *why,
                      size_t whylen);
#endif
