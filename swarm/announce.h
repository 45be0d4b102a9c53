/**
 * @file announce.h  The BitTorrent tracker client (BEP 3 announce, BEP 23 compact answers) on the
 * loop: tells a tracker which swarms (info_hashes) we are in and hands back the peers it knows.
 *
 * A swarm is either the pool (announce_pool_hash) or a job (the first 20 bytes of its id). Each
 * swarm added is announced at once with event=started, then again every interval (no event)
 * until it is removed (event=stopped, fire and forget). The requests go through the fetcher's
 * fetch_get, so they share its curl multi and time-outs but never its block slots.
 *
 * Every tracker answer is untrusted: announce_parse_reply decodes it with the bencode decoder
 * under tight limits and checks every type and length. A "failure reason", a bad body or a
 * failed request is logged and retried at the next interval; no callback fires for it.
 *
 * Errors are 0 or -errno. No global state. Callbacks run on the loop thread, never inside the
 * call that started the work.
 */
#ifndef PREON_SWARM_ANNOUNCE_H
#define PREON_SWARM_ANNOUNCE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "swarm/fetch.h"

#define ANNOUNCE_HASH_LEN 20

/** Peers kept from one answer (we ask for ANNOUNCE_NUMWANT; extra ones are dropped). */
#ifndef ANNOUNCE_MAX_PEERS
#define ANNOUNCE_MAX_PEERS 200
#endif
/** numwant sent with every announce. */
#ifndef ANNOUNCE_NUMWANT
#define ANNOUNCE_NUMWANT 50
#endif
/** Longest tracker answer read (a full compact answer of 200 peers is about 1.3 KiB). */
#ifndef ANNOUNCE_MAX_BODY
#define ANNOUNCE_MAX_BODY (64 * 1024)
#endif
/** Longest tracker URL accepted. */
#ifndef ANNOUNCE_MAX_URL
#define ANNOUNCE_MAX_URL 1024
#endif
/** Swarms announced at once by one client. */
#ifndef ANNOUNCE_MAX_SWARMS
#define ANNOUNCE_MAX_SWARMS 4096
#endif
/** The tracker's "interval" is clamped to [MIN, MAX]. */
#define ANNOUNCE_MIN_INTERVAL_MS 1000u
#define ANNOUNCE_MAX_INTERVAL_MS (30u * 60 * 1000)
/** After a failed announce the next try comes this soon, doubling after each failure (at most the
 * interval): a restarted tracker is back in the swarm within seconds. */
#define ANNOUNCE_RETRY_MIN_MS 1000u
/** The interval used before a tracker has answered (and after failures until it does). */
#ifndef ANNOUNCE_DEFAULT_INTERVAL_MS
#define ANNOUNCE_DEFAULT_INTERVAL_MS (60u * 1000)
#endif

typedef struct announce announce_t;

/** One peer from a tracker answer: IPv4 address (network byte order) and port (host order). */
typedef struct announce_peer {
    uint8_t ip[4];
    uint16_t port;
} announce_peer_t;

/**
 * The peers of the swarm after an answer (ourselves left out; possibly none). peers is valid for
 * the duration of the call only. The callback may call announce_remove or announce_close.
 */
typedef void (*announce_peers_cb)(const announce_peer_t *peers, size_t n, void *arg);
typedef void (*announce_close_cb)(void *arg);

typedef struct announce_opts {
    const char *tracker_url; /**< "http://host:port/announce" (copied; may carry a query) */
    const uint8_t *peer_id;  /**< 20 bytes (copied); NULL = "-PR0001-" and 12 random bytes */
    uint16_t port;           /**< our HTTP port, announced and used to recognise ourselves */
    uint32_t interval_ms;    /**< 0 = the tracker's "interval", clamped as above; else this */
} announce_opts_t;

/** A parsed tracker answer. */
typedef struct announce_reply {
    uint32_t interval_s;   /**< "interval", 0 if absent */
    bool has_external_ip;  /**< BEP 24 "external ip" (4 bytes) was given */
    uint8_t external_ip[4];
    size_t npeers;         /**< peers kept (at most ANNOUNCE_MAX_PEERS) */
    announce_peer_t peers[ANNOUNCE_MAX_PEERS];
} announce_reply_t;

/**
 * Parses a tracker's answer body[0..len) (untrusted). Accepts "peers" as a compact string (a
 * multiple of 6 bytes) or a list of dictionaries with "ip" (a dotted IPv4 string) and "port";
 * entries with port 0, and dictionaries whose "ip" is not IPv4 (a host name, IPv6), are skipped;
 * peers past ANNOUNCE_MAX_PEERS are dropped. Returns 0, -EPROTO for a "failure reason" (why holds
 * the tracker's reason, control characters replaced), -EINVAL for a body that is not a valid
 * answer, -EMSGSIZE for one over the decoder's limits; why says what was wrong.
 */
int announce_parse_reply(const char *body, size_t len, announce_reply_t *out, char *why, size_t whylen);

/**
 * A pool's well-known info_hash: the first 20 bytes of SHA-256("preon-pool:" name). Must equal
 * tracker_pool_hash (tracker/ is not a dependency of swarm/; tests/unit/test_announce.c checks).
 */
void announce_pool_hash(const char *name, uint8_t out[ANNOUNCE_HASH_LEN]);

/** "http://a.b.c.d:port" for a peer (the fetcher's peer URL form). out needs 32 bytes. */
void announce_peer_url(const announce_peer_t *p, char *out, size_t outlen);

/**
 * Creates a client that sends its requests through fetch (borrowed: it must outlive the client,
 * and must still be open when the client closes). -EINVAL for a missing or bad tracker URL (not
 * http://, over ANNOUNCE_MAX_URL, spaces, control characters or '#'), port 0, or NULL arguments.
 */
int announce_new(uv_loop_t *loop, fetch_t *fetch, const announce_opts_t *opts, announce_t **out);

/**
 * Sends event=stopped for every swarm (fire and forget), drops every callback (none fires after
 * this call) and frees a; cb (may be NULL) runs from the loop afterwards. Requests still under way
 * are abandoned: their answers are ignored, or they end with fetch_close. May be called from a
 * peers callback. Call once.
 */
void announce_close(announce_t *a, announce_close_cb cb, void *arg);

/**
 * Joins the swarm info_hash: announces event=started now (compact=1, numwant=ANNOUNCE_NUMWANT,
 * left=0 if seeder else 1), then every interval; cb(peers, n, arg) after each good answer. Until
 * an answer arrives, "started" is sent again at each retry. 0, -EINVAL, -EEXIST (already added),
 * -ENOSPC (ANNOUNCE_MAX_SWARMS), -ECANCELED (closing).
 */
int announce_add(announce_t *a, const uint8_t info_hash[ANNOUNCE_HASH_LEN], bool seeder,
                 announce_peers_cb cb, void *arg);

/** Leaves the swarm: its callback never fires again, and event=stopped is sent (fire and forget).
 * 0 or -ENOENT. */
int announce_remove(announce_t *a, const uint8_t info_hash[ANNOUNCE_HASH_LEN]);

/** Re-announces every swarm at once (from the loop, soon after this call): a swarm whose
 * announce is under way announces again as soon as it is answered. */
void announce_now(announce_t *a);

#endif
