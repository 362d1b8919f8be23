/*
 * floatip-hbfloor: what a heartbeat pattern costs a machine when nothing but C does it (a
 * benchmark contender of `npm run bench:idle`, not part of what an agent runs). It binds a
 * UDP address, sends one datagram of `--bytes` to each peer every `--interval-ms`, reads
 * every datagram that arrives (one wake-up each, as an agent reading as they come), and
 * ends by itself after `--seconds`, printing one JSON line:
 * {"sent":N,"received":N,"wakeups":N,"seconds":S}.
 *
 *   floatip-hbfloor --bind 198.18.0.1:7946 --peer 198.18.0.2:7946 [--peer …]
 *                   [--interval-ms 50] [--bytes 200] [--receive as-they-come|on-tick] --seconds S
 *
 * `--receive on-tick` never waits on the socket: it sleeps until its next send and drains
 * what arrived meanwhile then, so a peer's datagram wakes nobody (one wake-up per interval).
 * It prices a design where routine heartbeats are read on the node's own tick.
 *
 * Beside floatip and the same pattern in bare Node.js, it tells how much of an agent's idle
 * cost is the pattern itself (wake-ups on this machine) and how much is the runtime.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PEERS 64

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "a.b.c.d:port" into `out`; 0 on success. */
static int parse_endpoint(const char *text, struct sockaddr_in *out) {
  char host[64];
  const char *colon = strrchr(text, ':');
  if (!colon || (size_t)(colon - text) >= sizeof host) return -1;
  memcpy(host, text, (size_t)(colon - text));
  host[colon - text] = '\0';
  char *end = NULL;
  long port = strtol(colon + 1, &end, 10);
  if (*end != '\0' || port < 1 || port > 65535) return -1;
  memset(out, 0, sizeof *out);
  out->sin_family = AF_INET;
  out->sin_port = htons((uint16_t)port);
  return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -1;
}

static int usage(const char *why) {
  fprintf(stderr,
          "floatip-hbfloor: %s\nusage: floatip-hbfloor --bind ADDR:PORT --peer ADDR:PORT "
          "[--peer ...] [--interval-ms 50] [--bytes 200] [--receive as-they-come|on-tick] "
          "--seconds S\n",
          why);
  return 2;
}

int main(int argc, char **argv) {
  struct sockaddr_in bind_to, peers[MAX_PEERS];
  int have_bind = 0, peer_count = 0, on_tick = 0;
  long interval_ms = 50, bytes = 200, seconds = 0;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const char *value = i + 1 < argc ? argv[i + 1] : NULL;
    if (!value) return usage("every option takes a value");
    i++;
    if (strcmp(arg, "--bind") == 0) {
      if (parse_endpoint(value, &bind_to) != 0) return usage("--bind: expected IPv4:port");
      have_bind = 1;
    } else if (strcmp(arg, "--peer") == 0) {
      if (peer_count == MAX_PEERS) return usage("--peer: at most 64");
      if (parse_endpoint(value, &peers[peer_count]) != 0)
        return usage("--peer: expected IPv4:port");
      peer_count++;
    } else if (strcmp(arg, "--interval-ms") == 0) {
      interval_ms = strtol(value, NULL, 10);
    } else if (strcmp(arg, "--bytes") == 0) {
      bytes = strtol(value, NULL, 10);
    } else if (strcmp(arg, "--receive") == 0) {
      if (strcmp(value, "on-tick") == 0)
        on_tick = 1;
      else if (strcmp(value, "as-they-come") != 0)
        return usage("--receive: as-they-come or on-tick");
    } else if (strcmp(arg, "--seconds") == 0) {
      seconds = strtol(value, NULL, 10);
    } else {
      return usage("unknown option");
    }
  }
  if (!have_bind || peer_count == 0) return usage("--bind and at least one --peer are required");
  if (interval_ms < 1 || interval_ms > 60000) return usage("--interval-ms: 1 to 60000");
  if (bytes < 1 || bytes > 1400) return usage("--bytes: 1 to 1400");
  /* Bounded: it always ends by itself. */
  if (seconds < 1 || seconds > 3600) return usage("--seconds: 1 to 3600");

  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&bind_to, sizeof bind_to) != 0) {
    fprintf(stderr, "floatip-hbfloor: cannot bind: %s\n", strerror(errno));
    return 1;
  }
  char datagram[1400], buffer[2048];
  memset(datagram, 0x5a, sizeof datagram);
  long sent = 0, received = 0, wakeups = 0;
  const int64_t start = now_ms(), end = start + seconds * 1000;
  int64_t next = start;
  struct pollfd pfd = {.fd = fd, .events = POLLIN};
  while (!stop_requested) {
    int64_t now = now_ms();
    if (now >= end) break;
    if (now >= next) {
      if (on_tick) {
        wakeups++;
        while (recv(fd, buffer, sizeof buffer, MSG_DONTWAIT) > 0) received++;
      }
      for (int p = 0; p < peer_count; p++) {
        if (sendto(fd, datagram, (size_t)bytes, 0, (struct sockaddr *)&peers[p],
                   sizeof peers[p]) > 0)
          sent++;
      }
      next += interval_ms;
      if (next <= now) next = now + interval_ms; /* late: no burst to catch up */
      continue;
    }
    int timeout = (int)(next - now);
    int ready = poll(&pfd, on_tick ? 0 : 1, timeout);
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) continue;
    wakeups++;
    while (recv(fd, buffer, sizeof buffer, MSG_DONTWAIT) > 0) received++;
  }
  printf("{\"sent\":%ld,\"received\":%ld,\"wakeups\":%ld,\"seconds\":%.3f}\n", sent, received,
         wakeups, (double)(now_ms() - start) / 1000.0);
  close(fd);
  return 0;
}
