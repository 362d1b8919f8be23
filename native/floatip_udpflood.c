/*
 * floatip-udpflood: a bounded UDP flooder for floatip's benchmarks and namespace tests (not
 * part of what an agent runs). bench/lib/loads.ts writes the datagrams to send on standard
 * input and keeps it open; the flooder stops when standard input closes, on SIGTERM or
 * SIGINT, after `--seconds`, or after `--max` datagrams, whichever comes first, and prints one
 * JSON line: {"sent":N,"skipped":N,"errors":N,"seconds":S}.
 *
 *   floatip-udpflood --pps N --seconds S --max N < pool
 *
 * Pool format (all integers big-endian): u32 target count; per target: u32 IPv4 address,
 * u16 port, u16 local port to bind (0: any), u32 datagram count, then per datagram u16
 * length and the bytes. Datagrams go to each target in turn, cycling through its pool, at
 * `--pps` per target, paced every millisecond with at most 5 ms of credit (a flooder that
 * cannot keep up sends less and never catches up in one burst), in batches of sendmmsg(2).
 * Node.js's dgram cost about 70 µs per datagram here, too slow for 20,000 per second.
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

#define MAX_TARGETS 64
#define MAX_POOL 4096
#define BATCH 64

struct target {
  int fd;
  uint32_t count;
  struct iovec *datagrams;
  uint32_t next;
};

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static int read_exact(void *buffer, size_t length) {
  uint8_t *at = buffer;
  while (length > 0) {
    ssize_t n = read(0, at, length);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    at += n;
    length -= (size_t)n;
  }
  return 0;
}

static int read_u32(uint32_t *out) {
  uint8_t b[4];
  if (read_exact(b, 4) < 0) return -1;
  *out = ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
  return 0;
}

static int read_u16(uint16_t *out) {
  uint8_t b[2];
  if (read_exact(b, 2) < 0) return -1;
  *out = (uint16_t)((b[0] << 8) | b[1]);
  return 0;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(const char *what) {
  fprintf(stderr, "floatip-udpflood: %s: %s\n", what, strerror(errno));
  exit(2);
}

static void usage(void) {
  fputs("usage: floatip-udpflood --pps N --seconds S --max N < pool\n", stderr);
  exit(2);
}

int main(int argc, char **argv) {
  double pps = 0, seconds = 0, max = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    double value = strtod(argv[i + 1], NULL);
    if (strcmp(argv[i], "--pps") == 0) pps = value;
    else if (strcmp(argv[i], "--seconds") == 0) seconds = value;
    else if (strcmp(argv[i], "--max") == 0) max = value;
    else usage();
  }
  if (argc != 7 || pps <= 0 || seconds <= 0 || max <= 0) usage();

  uint32_t target_count;
  if (read_u32(&target_count) < 0 || target_count == 0 || target_count > MAX_TARGETS) {
    errno = EINVAL;
    fail("reading the pool (target count)");
  }
  struct target targets[MAX_TARGETS];
  for (uint32_t t = 0; t < target_count; t++) {
    uint32_t address, count;
    uint16_t port, bind_port;
    if (read_u32(&address) < 0 || read_u16(&port) < 0 || read_u16(&bind_port) < 0 ||
        read_u32(&count) < 0 || count == 0 || count > MAX_POOL) {
      errno = EINVAL;
      fail("reading the pool (target)");
    }
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket");
    if (bind_port != 0) {
      struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons(bind_port)};
      if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) fail("bind");
    }
    struct sockaddr_in remote = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr = {.s_addr = htonl(address)}};
    if (connect(fd, (struct sockaddr *)&remote, sizeof remote) < 0) fail("connect");
    targets[t].fd = fd;
    targets[t].count = count;
    targets[t].next = 0;
    targets[t].datagrams = calloc(count, sizeof(struct iovec));
    if (targets[t].datagrams == NULL) fail("calloc");
    for (uint32_t d = 0; d < count; d++) {
      uint16_t length;
      if (read_u16(&length) < 0) fail("reading the pool (length)");
      void *bytes = malloc(length ? length : 1);
      if (bytes == NULL || read_exact(bytes, length) < 0) fail("reading the pool (datagram)");
      targets[t].datagrams[d] = (struct iovec){.iov_base = bytes, .iov_len = length};
    }
  }

  struct sigaction action = {.sa_handler = on_signal};
  sigaction(SIGTERM, &action, NULL);
  sigaction(SIGINT, &action, NULL);
  signal(SIGPIPE, SIG_IGN);

  const double rate = pps * target_count;
  const double burst = rate / 200 > 20 ? rate / 200 : 20;
  double credit = 0;
  unsigned long long sent = 0, skipped = 0, errors = 0, attempts = 0;
  const double started = now_seconds();
  double last = started;
  struct mmsghdr messages[BATCH];
  uint32_t turn = 0;
  while (!stop_requested) {
    const double now = now_seconds();
    if (now - started >= seconds || (double)attempts >= max) break;
    struct pollfd input = {.fd = 0, .events = POLLIN};
    if (poll(&input, 1, 0) > 0 && (input.revents & (POLLIN | POLLHUP | POLLERR))) {
      char scratch[256];
      ssize_t n = read(0, scratch, sizeof scratch);
      if (n <= 0) break; /* standard input closed: stop */
    }
    credit += (now - last) * rate;
    if (credit > burst) credit = burst;
    last = now;
    while (credit >= 1 && (double)attempts < max) {
      struct target *target = &targets[turn];
      turn = (turn + 1) % target_count;
      unsigned batch = (unsigned)(credit / target_count);
      if (batch < 1) batch = 1;
      if (batch > BATCH) batch = BATCH;
      if ((double)(attempts + batch) > max) batch = (unsigned)(max - (double)attempts);
      for (unsigned i = 0; i < batch; i++) {
        memset(&messages[i], 0, sizeof messages[i]);
        messages[i].msg_hdr.msg_iov = &target->datagrams[target->next];
        messages[i].msg_hdr.msg_iovlen = 1;
        target->next = (target->next + 1) % target->count;
      }
      int n = sendmmsg(target->fd, messages, batch, 0);
      if (n < 0) {
        if (errno == EAGAIN || errno == ENOBUFS) skipped += batch;
        else errors += batch;
      } else {
        sent += (unsigned)n;
        skipped += batch - (unsigned)n;
      }
      attempts += batch;
      credit -= batch;
    }
    struct timespec tick = {.tv_sec = 0, .tv_nsec = 1000000};
    nanosleep(&tick, NULL);
  }
  printf("{\"sent\":%llu,\"skipped\":%llu,\"errors\":%llu,\"seconds\":%.3f}\n", sent, skipped,
         errors, now_seconds() - started);
  fflush(stdout);
  return 0;
}
