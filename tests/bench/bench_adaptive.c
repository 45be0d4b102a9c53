/*
 * bench_adaptive.c: what redundancy costs (issue 9, items 5 and 6), on the coordination core itself
 * (pool/coord.h: the same rules the peer runs, no sockets): a simulated pool of W workers, a share
 * of them lying, runs a job of T tasks under each replication scheme. In rounds, every worker leases
 * a task, then every one reports: an honest worker the right result, a liar a wrong one (its own per
 * worker, or, colluding, the same wrong one for every liar). Prints, per scheme, the runs per
 * accepted result, the wrong results accepted and the tasks failed (no quorum); the yardstick is
 * fixed replicas = 2 (quorum 2), BOINC's usual setting, and the ratio is ours / the yardstick's.
 * Usage: bench_adaptive [TASKS] [WORKERS] [LIARS_PERCENT] [SEED]
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool/coord.h"

typedef struct outcome {
    uint64_t runs, accepted, wrong, failed;
} outcome_t;

static uint64_t rng_state;

static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static outcome_t run(uint32_t tasks, uint32_t workers, uint32_t liars_pct, uint32_t replicas, bool adaptive,
                     bool collude, uint64_t seed)
{
    coord_t *c = coord_new(&(coord_opts_t){.max_leases_per_worker = 1u << 20, .seed = seed});
    char (*id)[16] = calloc(workers, sizeof(*id));
    bool *liar = calloc(workers, sizeof(*liar));
    rng_state = seed * 2654435761u + 1;
    for (uint32_t w = 0; w < workers; w++) {
        snprintf(id[w], sizeof(id[w]), "w%u", w);
        char host[24];
        snprintf(host, sizeof(host), "10.0.%u.%u", w / 250, w % 250);
        coord_worker_seen(c, id[w], host, 0);
        liar[w] = (uint64_t)w * 100 < (uint64_t)workers * liars_pct; /* exactly the share asked for */
    }
    /* the workers' records start empty: the first tasks build them (a warm-up the figures include) */
    coord_add_job(c, "job", tasks, replicas);
    if (adaptive)
        coord_set_adaptive(c, "job", true);
    outcome_t o = {0};
    char res[32];
    uint32_t *held = calloc(workers, sizeof(*held)), *order = calloc(workers, sizeof(*order));
    bool *has = calloc(workers, sizeof(*has));
    for (uint32_t w = 0; w < workers; w++)
        order[w] = w;
    /* Rounds: every worker, in a random order, leases a task; then they report, in another random
     * order. So every replica a task wants is out at once, as in a pool whose volunteers run in
     * parallel (a quorum cannot cut a replica short that already runs). */
    for (uint64_t round = 0; !coord_job_over(c, "job") && round < 100ull * tasks; round++) {
        for (int pass = 0; pass < 2; pass++) {
            for (uint32_t i = workers - 1; i > 0; i--) {
                uint32_t k = (uint32_t)(rnd() % (i + 1)), tmp = order[i];
                order[i] = order[k];
                order[k] = tmp;
            }
            for (uint32_t i = 0; i < workers; i++) {
                uint32_t w = order[i];
                if (pass == 0) {
                    has[w] = coord_lease(c, "job", id[w], 0, 1000, NULL, &held[w]) == 0;
                    continue;
                }
                if (!has[w])
                    continue;
                if (liar[w])
                    snprintf(res, sizeof(res), collude ? "wrong" : "wrong-%u", w);
                else
                    snprintf(res, sizeof(res), "right");
                coord_verdict_t v;
                coord_report(c, "job", held[w], id[w], res, true, &v);
                o.runs++; /* a run happened, whatever its report's fate (late ones too) */
            }
        }
    }
    free(held);
    free(order);
    free(has);
    for (uint32_t t = 0; t < tasks; t++) {
        const char *r = coord_task_result(c, "job", t);
        if (!r)
            o.failed++;
        else {
            o.accepted++;
            o.wrong += strcmp(r, "right") != 0;
        }
    }
    free(id);
    free(liar);
    coord_free(c);
    return o;
}

int main(int argc, char **argv)
{
    uint32_t tasks = argc > 1 ? (uint32_t)atoi(argv[1]) : 20000;
    uint32_t workers = argc > 2 ? (uint32_t)atoi(argv[2]) : 100;
    uint32_t liars = argc > 3 ? (uint32_t)atoi(argv[3]) : 10;
    uint64_t seed = argc > 4 ? (uint64_t)atoll(argv[4]) : 1;
    if (!tasks || !workers || liars > 100) {
        fprintf(stderr, "usage: bench_adaptive [TASKS] [WORKERS] [LIARS_PERCENT] [SEED]\n");
        return 2;
    }
    printf("a pool of %u workers, %u%% lying, %u tasks per run (seed %llu); adaptive: streak >= %d, "
           "spot checks %.0f%%\n", workers, liars, tasks, (unsigned long long)seed, COORD_ADAPTIVE_STREAK,
           COORD_ADAPTIVE_SPOT * 100);
    for (int collude = 0; collude < 2; collude++) {
        printf("-- liars %s\n", collude ? "colluding (all send the same wrong result)" : "independent (each its own wrong result)");
        printf("%-26s %12s %14s %10s %8s\n", "scheme", "runs/result", "wrong/1000", "failed", "ratio");
        outcome_t base = run(tasks, workers, liars, 2, false, collude, seed);
        double base_rpr = base.accepted ? (double)base.runs / (double)base.accepted : 0;
        struct { const char *name; uint32_t replicas; bool adaptive; } schemes[] = {
            {"replicas = 1", 1, false},
            {"replicas = 2 (yardstick)", 2, false},
            {"replicas = 3", 3, false},
            {"replicas = adaptive", 2, true},
        };
        for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
            outcome_t o = i == 1 ? base : run(tasks, workers, liars, schemes[i].replicas, schemes[i].adaptive, collude, seed);
            double rpr = o.accepted ? (double)o.runs / (double)o.accepted : 0;
            printf("%-26s %12.3f %14.2f %10llu %8.3f\n", schemes[i].name, rpr,
                   o.accepted ? 1000.0 * (double)o.wrong / (double)o.accepted : 0, (unsigned long long)o.failed,
                   base_rpr > 0 ? rpr / base_rpr : 0);
        }
    }
    return 0;
}
