/**
 * @file idle.h  Whether the volunteer's machine is idle (--when idle): no keyboard or mouse input
 * for a while, and little CPU used by other processes.
 *
 * Input comes from the kernel's input devices (every event* of a directory, /dev/input by default:
 * each readable event is the owner at the machine; no X11 or logind needed, and it sees every
 * console and display server alike). The CPU use of other processes is the machine's (/proc/stat)
 * less what the peer's tasks (their cgroups: exec_tasks_cpu_file) and the peer itself used, over the
 * last IDLE_CPU_WINDOW_MS. The rule (idle_decide) is pure and unit-tested; the monitor feeds it
 * from the loop. Devices are opened and files read in the thread pool; the loop polls the devices'
 * fds (non-blocking reads) and re-opens a FIFO whose writer closed it (a test's fake device; an
 * open of a FIFO with O_NONBLOCK never waits).
 *
 * Verdicts: RUN (idle: tasks may run), SUSPEND (the owner is back: running tasks are frozen and no
 * new ones start), GIVE_BACK (busy for longer than the grace period: suspended tasks are given
 * back, to run elsewhere). docs/usage.md ("Only when idle").
 */
#ifndef PREON_EXEC_IDLE_H
#define PREON_EXEC_IDLE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "exec/exec.h"

#ifndef IDLE_TICK_MS
#define IDLE_TICK_MS 250 /* how often the rule is applied and the CPU sampled */
#endif
#ifndef IDLE_CPU_WINDOW_MS
#define IDLE_CPU_WINDOW_MS 5000 /* the CPU use of other processes is averaged over this long */
#endif
#ifndef IDLE_RESCAN_MS
#define IDLE_RESCAN_MS 5000 /* input devices plugged in later are found this often */
#endif
#define IDLE_MAX_INPUTS 64

typedef struct idle_opts {
    const char *input_dir;   /**< where the input devices are (NULL: /dev/input); its event* entries */
    uint64_t after_ms;       /**< idle once no input came for this long */
    unsigned cpu_permille;   /**< and other processes use less than this share of all CPUs, x 1000 (0: not checked) */
    uint64_t grace_ms;       /**< busy for this long: tasks are given back */
    const char *cpu_file;    /**< our tasks' CPU time (exec_tasks_cpu_file; NULL: the CPU is not looked at) */
} idle_opts_t;

typedef enum idle_verdict { IDLE_RUN, IDLE_SUSPEND, IDLE_GIVE_BACK } idle_verdict_t;

/**
 * Pure: the verdict at now_ms, given the last input (ms, same clock) and other processes' share of
 * the CPUs x 1000 (-1: unknown, not checked). *busy_since (0: not busy) is the rule's state, kept
 * by the caller between calls. why gets the reason the machine is not idle ("" if it is).
 * Hysteresis: once busy, the CPU share must fall below half of o->cpu_permille for it to be idle
 * again (tasks that are frozen take their own load away; without it the verdict would flap).
 */
idle_verdict_t idle_decide(const idle_opts_t *o, uint64_t now_ms, uint64_t last_input_ms, int other_permille,
                           uint64_t *busy_since, char *why, size_t whylen);

/** Pure: the first "cpu" line of /proc/stat: busy and total time in clock ticks (steal time, the
 * hypervisor's, is neither). 0 or -EBADMSG. */
int idle_parse_stat(const char *text, uint64_t *busy, uint64_t *total);
/** Pure: the tasks' CPU time in ns from the text of exec_tasks_cpu_file (v1 "cpuacct.usage": ns;
 * v2 "cpu.stat": usage_usec), stat telling which. 0 or -EBADMSG. */
int idle_parse_cpu(const char *text, bool stat, uint64_t *ns);

/**
 * Pure: other processes' share of the CPUs x 1000, between two samples (each: the machine's busy and
 * total ticks, ns per tick, and the ns used by our tasks and by the peer itself); -1 if it cannot be
 * told (no time passed, counters went back).
 */
typedef struct idle_sample {
    uint64_t busy_ticks, total_ticks; /* /proc/stat */
    uint64_t tasks_ns, self_ns;       /* our tasks' cgroups, the peer's own rusage */
    uint64_t at_ms;
} idle_sample_t;
int idle_other_permille(const idle_sample_t *a, const idle_sample_t *b, uint64_t ns_per_tick);

typedef struct idle idle_t;
/** Called from the loop whenever the verdict changes (why: "" for RUN; valid during the call). */
typedef void (*idle_cb)(void *arg, idle_verdict_t v, const char *why);

/**
 * Starts watching: input devices are opened in the thread pool; until the first input the machine
 * counts as used at the start (so tasks wait after_ms first). Without opts->cpu_file the CPU rule
 * is off (said once in the log if cpu_permille asks for it). 0 or -errno. opts' strings are copied:
 * the monitor holds nothing of its caller's.
 */
int idle_new(uv_loop_t *loop, const idle_opts_t *opts, idle_cb cb, void *arg, idle_t **out);
/** The verdict now and why (the reason the machine is not idle, "" if it is; valid until the next loop turn). */
idle_verdict_t idle_verdict(const idle_t *m, const char **why);
/** Input devices watched now. */
unsigned idle_inputs(const idle_t *m);
/** Stops: cb is never called again; the monitor's memory goes once its thread-pool work and handles
 * are done (it touches nothing of the caller's meanwhile). */
void idle_close(idle_t *m);

#endif
