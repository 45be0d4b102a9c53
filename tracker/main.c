/*
 * main.c: `preon tracker`, the tracker on its own: one loop, one httpd, the tracker's routes, and
 * SIGINT/SIGTERM for a clean exit (status 0). It links only core/ and tracker/.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "tracker/tracker.h"

static const char usage_tracker[] =
    "usage: preon tracker [options]\n"
    "  --port N          TCP port (default 6969; 0 = any free port, see --ready-fd)\n"
    "  --listen ADDR     address to listen on (default 0.0.0.0)\n"
    "  --interval S      announce interval told to clients, in seconds (default 1800);\n"
    "                    peers silent for 2 x S are dropped\n"
    "  --max-peers N     peers held at once (default 2000000)\n"
    "  --host-conns N    connections at once one host may hold; more are closed at once (default 64;\n"
    "                    loopback clients are exempt unless --host-conns-loopback)\n"
    "  --host-conns-loopback  apply --host-conns to loopback clients too (127.0.0.0/8, ::1)\n"
    "  --request-timeout S  a request must arrive whole within S seconds, or its connection is cut\n"
    "                    (default 20)\n"
    "  --ready-fd N      write \"listening on ADDR:PORT\\n\" to fd N once listening\n"
    "  --log FILE        also log to FILE\n"
    "  --log-level LEVEL error, warn, info (default) or debug\n"
    "  --help\n";

typedef struct main_ctx {
    uv_loop_t loop;
    uv_signal_t sig[2];
    httpd_t *httpd;
    tracker_t *tracker;
} main_ctx_t;

static void on_tracker_closed(void *arg)
{
    main_ctx_t *c = arg;
    httpd_close(c->httpd, NULL, NULL);
    c->httpd = NULL;
}

static void on_signal(uv_signal_t *s, int signum)
{
    main_ctx_t *c = s->data;
    log_info("tracker: signal %d, stopping", signum);
    for (int i = 0; i < 2; i++)
        uv_close((uv_handle_t *)&c->sig[i], NULL);
    tracker_close(c->tracker, on_tracker_closed, c);
    c->tracker = NULL;
}

static int parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || s[0] == '+' || v < min || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

int tracker_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"port", required_argument, NULL, 'p'},     {"listen", required_argument, NULL, 'a'},
        {"interval", required_argument, NULL, 'i'}, {"max-peers", required_argument, NULL, 'm'},
        {"ready-fd", required_argument, NULL, 'r'}, {"log", required_argument, NULL, 'l'},
        {"log-level", required_argument, NULL, 'L'}, {"help", no_argument, NULL, 'h'},
        {"host-conns", required_argument, NULL, 'C'}, {"host-conns-loopback", no_argument, NULL, 'B'},
        {"request-timeout", required_argument, NULL, 'R'},
        {0},
    };
    unsigned long port = 6969, interval = TRACKER_DEFAULT_INTERVAL_S, max_peers = TRACKER_DEFAULT_MAX_PEERS, v;
    long ready_fd = -1;
    const char *listen = "0.0.0.0";
    httpd_opts_t ho = {0};
    int c;
    optind = 1;
    int li = -1; /* the long option's index: its name for a message (argv may hold its value there) */
    while ((li = -1, c = getopt_long(argc, argv, "h", opts, &li)) != -1) {
        int bad = 0;
        switch (c) {
        case 'p': bad = parse_ulong(optarg, 0, 65535, &port); break;
        case 'C': bad = parse_ulong(optarg, 1, 1000000, &v); ho.max_host_conns = (unsigned)v; break;
        case 'B': ho.limit_loopback = true; break;
        case 'R': bad = parse_ulong(optarg, 1, HTTPD_MAX_TIMEOUT_S, &v); ho.request_timeout_s = (unsigned)v; break;
        case 'a': listen = optarg; break;
        case 'i': bad = parse_ulong(optarg, 1, 86400, &interval); break;
        case 'm': bad = parse_ulong(optarg, 1, 1000000000ul, &max_peers); break;
        case 'r': bad = parse_ulong(optarg, 0, INT_MAX, &v); ready_fd = (long)v; break;
        case 'l': bad = log_set_file(optarg) != 0; break;
        case 'L': {
            enum log_level l;
            bad = log_parse_level(optarg, &l);
            if (!bad)
                log_set_level(l);
            break;
        }
        case 'h': fputs(usage_tracker, stdout); return 0;
        default: fputs(usage_tracker, stderr); return 2;
        }
        if (bad) {
            fprintf(stderr, "preon tracker: bad value for --%s: '%s'\n", li >= 0 ? opts[li].name : "?", optarg);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "preon tracker: unexpected argument '%s'\n%s", argv[optind], usage_tracker);
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);
    main_ctx_t ctx = {0};
    uv_loop_init(&ctx.loop);
    ho.addr = listen;
    ho.port = (uint16_t)port;
    int rc = httpd_new(&ctx.loop, &ho, &ctx.httpd);
    if (rc) {
        fprintf(stderr, "preon tracker: cannot listen on %s port %lu: %s\n", listen, port, strerror(-rc));
        uv_loop_close(&ctx.loop);
        return 1;
    }
    tracker_opts_t to = {.interval_s = (uint32_t)interval, .max_peers = max_peers};
    rc = tracker_start(&ctx.loop, ctx.httpd, &to, &ctx.tracker);
    if (rc) {
        fprintf(stderr, "preon tracker: %s\n", strerror(-rc));
        httpd_close(ctx.httpd, NULL, NULL);
        uv_run(&ctx.loop, UV_RUN_DEFAULT);
        uv_loop_close(&ctx.loop);
        return 1;
    }
    int sigs[2] = {SIGTERM, SIGINT};
    for (int i = 0; i < 2; i++) {
        uv_signal_init(&ctx.loop, &ctx.sig[i]);
        ctx.sig[i].data = &ctx;
        uv_signal_start(&ctx.sig[i], on_signal, sigs[i]);
    }
    char line[128];
    bool v6 = strchr(listen, ':') != NULL;
    int n = snprintf(line, sizeof(line), "listening on %s%s%s:%u\n", v6 ? "[" : "", listen, v6 ? "]" : "",
                     (unsigned)httpd_port(ctx.httpd));
    log_info("tracker: %.*s (interval %lus)", n - 1, line, interval);
    if (ready_fd >= 0) {
        if (write((int)ready_fd, line, (size_t)n) != n)
            log_warn("--ready-fd %ld: %s", ready_fd, strerror(errno));
        close((int)ready_fd);
    }
    uv_run(&ctx.loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&ctx.loop);
    if (rc)
        log_warn("tracker: loop closed with handles open: %s", uv_strerror(rc));
    return 0;
}
