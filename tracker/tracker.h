/**
 * @file tracker.h  The BitTorrent HTTP tracker (BEP 3 announce, BEP 23 compact peer lists, BEP 48
 * scrape), which is also Preon's tracker: a job's swarm is the info_hash made of the first 20
 * bytes of its job id, and a pool is one more well-known info_hash (tracker_pool_hash).
 *
 * Two layers:
 *  - tracker_state_t, the sans-I/O core: swarms and peers in memory, and every request as a pure
 *    function of (state, query string, client address, now_ms) that writes the bencoded answer
 *    into a buffer. No sockets, no clock: tests drive it directly.
 *  - tracker_t, the server: routes /announce and /scrape of a shared httpd_t to the core and
 *    runs the expiry timer on the loop.
 *
 * Peers are identified by their IPv4 address and port within a swarm (as opentracker does); the
 * peer_id is kept for non-compact answers. A peer that has not announced for 2 x interval is
 * dropped. Failures are answered with HTTP 200 and a bencoded "failure reason", which is what
 * BitTorrent clients read. See docs/tracker.md.
 */
#ifndef PREON_TRACKER_TRACKER_H
#define PREON_TRACKER_TRACKER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "core/bencode.h"
#include "core/hash.h"
#include "core/httpd.h"

#define TRACKER_HASH_LEN 20

#ifndef TRACKER_DEFAULT_INTERVAL_S
#define TRACKER_DEFAULT_INTERVAL_S 1800
#endif
#ifndef TRACKER_DEFAULT_NUMWANT
#define TRACKER_DEFAULT_NUMWANT 50
#endif
#ifndef TRACKER_MAX_NUMWANT
#define TRACKER_MAX_NUMWANT 200
#endif
/** Peers held at once over all swarms (about 48 bytes each: 2 M peers is about 100 MiB). */
#ifndef TRACKER_DEFAULT_MAX_PEERS
#define TRACKER_DEFAULT_MAX_PEERS 2000000
#endif
#ifndef TRACKER_DEFAULT_MAX_SWARMS
#define TRACKER_DEFAULT_MAX_SWARMS 1000000
#endif
/** info_hashes in one scrape (opentracker's OT_MAXMULTISCRAPE_COUNT is 64 too). */
#ifndef TRACKER_MAX_SCRAPE
#define TRACKER_MAX_SCRAPE 64
#endif

typedef struct tracker_opts {
    uint32_t interval_s;      /**< "interval" told to clients; 0 = TRACKER_DEFAULT_INTERVAL_S */
    uint32_t min_interval_s;  /**< "min interval"; 0 = interval / 2 (at least 1) */
    uint32_t numwant_default; /**< peers returned when numwant is absent; 0 = TRACKER_DEFAULT_NUMWANT */
    uint32_t numwant_max;     /**< 0 = TRACKER_MAX_NUMWANT */
    size_t max_peers;         /**< 0 = TRACKER_DEFAULT_MAX_PEERS */
    size_t max_swarms;        /**< 0 = TRACKER_DEFAULT_MAX_SWARMS */
    uint64_t seed;            /**< seeds the peer sampling and hash keys; 0 = random (getrandom) */
} tracker_opts_t;

/* ---- the sans-I/O core ------------------------------------------------------------------------ */

typedef struct tracker_state tracker_state_t;

typedef enum tracker_event {
    TRACKER_EVENT_NONE = 0,
    TRACKER_EVENT_STARTED,
    TRACKER_EVENT_STOPPED,
    TRACKER_EVENT_COMPLETED,
} tracker_event_t;

/** One parsed announce. */
typedef struct tracker_announce {
    uint8_t info_hash[TRACKER_HASH_LEN];
    uint8_t peer_id[TRACKER_HASH_LEN];
    uint8_t addr[6];     /**< IPv4 address and port in network byte order: the compact form */
    uint64_t uploaded, downloaded, left;
    bool left_known;     /**< left was given (a peer without it counts as a leecher) */
    tracker_event_t event;
    int32_t numwant;     /**< -1 = the tracker's default */
    bool compact;        /**< compact=1 or absent: BEP 23 (6 bytes a peer); compact=0: dictionaries */
    bool no_peer_id;     /**< non-compact answers leave out "peer id" */
} tracker_announce_t;

typedef struct tracker_stats {
    size_t swarms, peers, seeders;
    size_t bytes; /**< memory held for swarms and peers (the tables' and arrays' sizes) */
} tracker_stats_t;

/** 0 or -EINVAL (interval over a day, min interval over interval). */
int tracker_state_new(const tracker_opts_t *opts, tracker_state_t **out);
void tracker_state_free(tracker_state_t *t);

/**
 * Parses an announce's raw query string. from is the connection's address: the peer's address is
 * taken from it, except that a client connecting from loopback may name another IPv4 address with
 * the "ip" parameter (a peer on the tracker's own host announcing its LAN address, or a test); from
 * anywhere else "ip" is ignored, so nobody can point a swarm at a third party. 0, or -EINVAL with
 * the failure reason for the client in why.
 */
int tracker_parse_announce(const char *query, size_t len, const struct sockaddr *from,
                           tracker_announce_t *a, char *why, size_t whylen);
/**
 * Parses a scrape's query: one or more info_hash (at most TRACKER_MAX_SCRAPE), returned sorted and
 * without duplicates. 0, or -EINVAL with why (also for none: a full scrape is not served).
 */
int tracker_parse_scrape(const char *query, size_t len, uint8_t (*hashes)[TRACKER_HASH_LEN], size_t *n,
                         char *why, size_t whylen);

/**
 * Applies an announce at now_ms and replaces out's contents with the bencoded answer: counts,
 * intervals and up to numwant other peers of the swarm (never the announcing peer itself).
 * 0, or -ENOSPC when the tracker holds max_peers or max_swarms (out then holds a failure).
 */
int tracker_announce(tracker_state_t *t, const tracker_announce_t *a, uint64_t now_ms, bencode_buf_t *out);
/** Replaces out's contents with the scrape answer; hashes sorted and unique (unknown ones are
 * left out, as opentracker does). */
void tracker_scrape(tracker_state_t *t, const uint8_t (*hashes)[TRACKER_HASH_LEN], size_t n, uint64_t now_ms,
                    bencode_buf_t *out);
/** Replaces out's contents with d14:failure reason...e. */
void tracker_failure(bencode_buf_t *out, const char *reason);

/** Parse and answer in one step (what the server calls): out always holds a bencoded answer. */
void tracker_handle_announce(tracker_state_t *t, const char *query, size_t len, const struct sockaddr *from,
                             uint64_t now_ms, bencode_buf_t *out);
void tracker_handle_scrape(tracker_state_t *t, const char *query, size_t len, uint64_t now_ms, bencode_buf_t *out);

/**
 * Drops expired peers and empty swarms, visiting at most `budget` slots of the swarm table from
 * where the previous call stopped (so a timer can spread the work). Announces and scrapes expire
 * the swarm they touch themselves, so answers are exact without this; it reclaims memory of
 * swarms nobody asks about. Returns the number of peers dropped.
 */
size_t tracker_expire(tracker_state_t *t, uint64_t now_ms, size_t budget);
void tracker_get_stats(const tracker_state_t *t, tracker_stats_t *st);

/** A pool's well-known info_hash: the first 20 bytes of SHA-256("preon-pool:" name). */
void tracker_pool_hash(const char *name, uint8_t out[TRACKER_HASH_LEN]);
/** A job's info_hash: the first 20 bytes of its id (as BEP 52 truncates SHA-256 hashes). */
void tracker_job_hash(const hash_t *job_id, uint8_t out[TRACKER_HASH_LEN]);

/* ---- the server ------------------------------------------------------------------------------- */

typedef struct tracker tracker_t;

/**
 * Serves /announce and /scrape on h (which the caller owns and must close after tracker_close)
 * and starts the expiry timer. 0, -EINVAL (options), or httpd_route's errors (-EEXIST).
 */
int tracker_start(uv_loop_t *loop, httpd_t *h, const tracker_opts_t *opts, tracker_t **out);
/** The core, for statistics. */
tracker_state_t *tracker_get_state(tracker_t *t);
/** Removes the routes, stops the timer and frees t; cb (may be NULL) runs from the loop after. */
void tracker_close(tracker_t *t, void (*cb)(void *arg), void *arg);

/** `preon tracker [--port N] [--listen ADDR] [--interval S] ...`: argv[0] is "tracker". */
int tracker_main(int argc, char **argv);

#endif
