/**
 * @file liveout.h  A running task's live output (docs/usage.md, "Live output"): what a volunteer
 * sends of its task's stdout and stderr, and what the submitter keeps of it, bounded.
 *
 * The volunteer sends, every few seconds, the bytes each stream gained since its last update, at
 * most a chunk of them (WIRE_MAX_OUTPUT_CHUNK): when more came, the newest chunk goes and the
 * bytes before it are skipped (liveout_pick). The submitter writes what comes into a live file per
 * stream that holds at most head + mark + tail bytes (liveout_apply): the first `head` bytes as
 * they come (a skip shows as a line "[preon: N bytes skipped]"); past them a fixed line (the mark,
 * liveout_mark) and the last `tail` bytes, rewritten at each update. Updates are idempotent: each
 * names where its bytes start in the stream, and bytes already taken are dropped, so a resent
 * update changes nothing.
 *
 * Pure: no I/O, no clock (tests/unit/test_liveout.c). Errors are 0 or -errno.
 */
#ifndef PREON_POOL_LIVEOUT_H
#define PREON_POOL_LIVEOUT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef LIVEOUT_HEAD
#define LIVEOUT_HEAD (1u << 20) /* the first bytes of a stream the submitter keeps as they come */
#endif
#ifndef LIVEOUT_TAIL
#define LIVEOUT_TAIL (64u * 1024) /* past them, the last bytes it keeps */
#endif
#define LIVEOUT_MAX_MARK 256 /* bytes of the mark line at most */
#define LIVEOUT_MAX_SKIP 96  /* bytes of a skip line at most */
/** The most bytes a live file holds: its head, the mark and its tail. */
#define LIVEOUT_MAX_FILE(k) ((uint64_t)(k)->head + LIVEOUT_MAX_MARK + (k)->tail)
/** The most bytes one update of len bytes adds to a live file (a skip line, the mark, the bytes). */
#define LIVEOUT_MAX_GROWTH(len) ((uint64_t)(len) + LIVEOUT_MAX_SKIP + LIVEOUT_MAX_MARK)

/** What a live file keeps: its head and tail sizes (LIVEOUT_HEAD and LIVEOUT_TAIL; tests use small ones). */
typedef struct liveout_keep {
    uint32_t head, tail;
} liveout_keep_t;

/**
 * Volunteer: a stream of size bytes, of which [0, sent) went already: the next update carries
 * [*off, *off + *len), the newest chunk (at most chunk bytes) of what is new; *len is 0 if nothing
 * is (also if the stream shrank below sent).
 */
void liveout_pick(uint64_t sent, uint64_t size, uint32_t chunk, uint64_t *off, uint32_t *len);

/** The line between a live file's head and its tail (k's sizes in it), into buf; its length. */
size_t liveout_mark(const liveout_keep_t *k, char *buf, size_t cap);

/** A live file as the submitter keeps it (the stream is what the task printed). */
typedef struct liveout_file {
    uint64_t next;  /**< the stream's bytes before this were taken (or skipped) */
    uint64_t len;   /**< bytes in the file */
    bool windowed;  /**< past its head: the file is head, mark, then the last tail bytes */
} liveout_file_t;

/** What one update does to a live file: buf at `at`, then the file cut at new_len. */
typedef struct liveout_write {
    uint64_t at;
    char *buf;        /**< xmalloc'd (NULL if len is 0); the caller frees it */
    size_t len;
    uint64_t new_len;
} liveout_write_t;

/**
 * Submitter: the bytes [off, off + len) of a stream came, for the file f describes. window: the
 * file's tail (its bytes from head + the mark's length on, wlen of them) when f->windowed, else
 * NULL. Bytes before f->next are dropped (sent again); a gap before off is a skip line. On 0, *w
 * says what to write (w->len 0: nothing: every byte was taken already) and f is what the file will
 * be once it is written. -EINVAL: off + len past WIRE_MAX_OUTPUT_OFF, len over WIRE_MAX_OUTPUT_CHUNK,
 * or k's sizes 0 (f and *w unchanged).
 */
int liveout_apply(const liveout_keep_t *k, liveout_file_t *f, const char *window, size_t wlen, uint64_t off,
                  const char *data, size_t len, liveout_write_t *w);

#endif
