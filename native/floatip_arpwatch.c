/*
 * floatip-arpwatch: asks "who has VIP?" for every VIP every few milliseconds from a client
 * namespace and prints every answer, so a test can tell, round by round, whether no host,
 * one host or two hosts answered for a VIP (not part of what an agent runs; test/netns/
 * fault-matrix.test.ts reads it). A kernel answers ARP for an address configured on its
 * interface whether or not its agent runs: a frozen agent's VIP still answers here.
 *
 *   floatip-arpwatch IFACE INTERVAL_MS MAX_ROUNDS MAX_SECONDS VIP...
 *
 * Round r's requests carry the sender address SUBNET.(200 + r % 50) (the /24 of IFACE's own
 * address), so every reply names its round in its target address, however late it arrives.
 * Output, one line each, times in microseconds of CLOCK_REALTIME:
 *   S ROUND TIME              requests of ROUND sent
 *   A ROUND VIP MAC TIME      a reply to ROUND: MAC has VIP
 *   E TEXT                    an error; the exit status is then 1
 * Stops after MAX_ROUNDS, after MAX_SECONDS, on SIGTERM or SIGINT, or when standard output
 * closes. Only the replies to the last 50 rounds can be attributed; older ones are ignored.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_VIPS 256
#define ROUND_SENDERS 50
#define FRAME_BYTES 42

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static int64_t monotonic_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static long long realtime_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (long long)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static void build_request(uint8_t *frame, const uint8_t mac[6], uint32_t sender, uint32_t target) {
  static const uint8_t broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  struct ether_header *eth = (struct ether_header *)frame;
  struct arphdr *arp = (struct arphdr *)(frame + 14);
  uint8_t *body = frame + 14 + sizeof *arp;
  memcpy(eth->ether_dhost, broadcast, 6);
  memcpy(eth->ether_shost, mac, 6);
  eth->ether_type = htons(ETH_P_ARP);
  arp->ar_hrd = htons(ARPHRD_ETHER);
  arp->ar_pro = htons(ETH_P_IP);
  arp->ar_hln = 6;
  arp->ar_pln = 4;
  arp->ar_op = htons(ARPOP_REQUEST);
  memcpy(body, mac, 6);
  memcpy(body + 6, &sender, 4);
  memset(body + 10, 0, 6);
  memcpy(body + 16, &target, 4);
}

int main(int argc, char **argv) {
  struct ifreq request;
  struct sockaddr_ll destination;
  uint8_t mac[6];
  uint32_t own, vips[MAX_VIPS];
  long interval_ms, max_rounds, max_seconds, round = 0, last_round = -1;
  int fd, vip_count, i, result = 0;
  int64_t started, next_send;

  if (argc < 6) {
    fprintf(stderr, "usage: floatip-arpwatch IFACE INTERVAL_MS MAX_ROUNDS MAX_SECONDS VIP...\n");
    return 2;
  }
  interval_ms = strtol(argv[2], NULL, 10);
  max_rounds = strtol(argv[3], NULL, 10);
  max_seconds = strtol(argv[4], NULL, 10);
  vip_count = argc - 5;
  if (strlen(argv[1]) >= IFNAMSIZ || interval_ms < 1 || interval_ms > 60000 || max_rounds < 1 ||
      max_seconds < 1 || max_seconds > 3600 || vip_count > MAX_VIPS) {
    fprintf(stderr, "floatip-arpwatch: bad arguments (interval 1..60000 ms, rounds >= 1, "
                    "seconds 1..3600, at most %d VIPs)\n", MAX_VIPS);
    return 2;
  }
  for (i = 0; i < vip_count; i++) {
    struct in_addr parsed;
    if (inet_pton(AF_INET, argv[5 + i], &parsed) != 1) {
      fprintf(stderr, "floatip-arpwatch: %s is not an IPv4 address\n", argv[5 + i]);
      return 2;
    }
    vips[i] = parsed.s_addr;
  }
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  signal(SIGPIPE, on_signal);
  setvbuf(stdout, NULL, _IOLBF, 0);

  fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ARP));
  if (fd < 0) {
    printf("E socket: %s\n", strerror(errno));
    return 1;
  }
  memset(&request, 0, sizeof request);
  strcpy(request.ifr_name, argv[1]);
  if (ioctl(fd, SIOCGIFHWADDR, &request) != 0) {
    printf("E no interface %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  memcpy(mac, request.ifr_hwaddr.sa_data, 6);
  if (ioctl(fd, SIOCGIFADDR, &request) != 0) {
    printf("E %s has no IPv4 address: %s\n", argv[1], strerror(errno));
    return 1;
  }
  own = ((struct sockaddr_in *)&request.ifr_addr)->sin_addr.s_addr;
  if (ioctl(fd, SIOCGIFINDEX, &request) != 0) {
    printf("E %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  memset(&destination, 0, sizeof destination);
  destination.sll_family = AF_PACKET;
  destination.sll_protocol = htons(ETH_P_ARP);
  destination.sll_ifindex = request.ifr_ifindex;
  destination.sll_halen = 6;
  memset(destination.sll_addr, 0xff, 6);
  if (bind(fd, (struct sockaddr *)&destination, sizeof destination) != 0) {
    printf("E bind: %s\n", strerror(errno));
    return 1;
  }

  started = monotonic_us();
  next_send = started;
  while (!stop_requested) {
    int64_t now = monotonic_us();
    struct pollfd waiter = {fd, POLLIN, 0};
    if (now - started >= (int64_t)max_seconds * 1000000) break;
    if (now >= next_send) {
      if (round >= max_rounds) {
        /* The last round's replies get one more interval to arrive. */
        if (now >= next_send + interval_ms * 1000) break;
      } else {
        uint32_t sender = htonl((ntohl(own) & 0xffffff00u) | (uint32_t)(200 + round % ROUND_SENDERS));
        for (i = 0; i < vip_count; i++) {
          uint8_t frame[FRAME_BYTES];
          build_request(frame, mac, sender, vips[i]);
          if (sendto(fd, frame, sizeof frame, 0, (struct sockaddr *)&destination,
                     sizeof destination) < 0 && errno != EAGAIN && errno != ENOBUFS) {
            printf("E send: %s\n", strerror(errno));
            result = 1;
            stop_requested = 1;
            break;
          }
        }
        if (printf("S %ld %lld\n", round, realtime_us()) < 0) break;
        last_round = round;
        round += 1;
        next_send += interval_ms * 1000;
        /* A late wake-up does not send a burst of rounds to catch up. */
        if (next_send < now) next_send = now + interval_ms * 1000;
      }
    }
    poll(&waiter, 1, (int)((next_send - monotonic_us()) / 1000 + 1));
    for (;;) {
      uint8_t frame[128];
      struct sockaddr_ll from;
      socklen_t from_length = sizeof from;
      uint32_t sender_ip, target_ip;
      long offset, answered;
      char vip_text[INET_ADDRSTRLEN];
      ssize_t length = recvfrom(fd, frame, sizeof frame, 0, (struct sockaddr *)&from, &from_length);
      if (length < 0) break;
      if (length < FRAME_BYTES || from.sll_pkttype == PACKET_OUTGOING) continue;
      if (ntohs(*(uint16_t *)(frame + 20)) != ARPOP_REPLY) continue;
      memcpy(&sender_ip, frame + 28, 4);
      memcpy(&target_ip, frame + 38, 4);
      if ((ntohl(target_ip) & 0xffffff00u) != (ntohl(own) & 0xffffff00u)) continue;
      offset = (long)(ntohl(target_ip) & 0xff) - 200;
      if (offset < 0 || offset >= ROUND_SENDERS || last_round < 0) continue;
      /* The newest round at or before last_round whose sender was this one. */
      answered = last_round - ((last_round % ROUND_SENDERS) - offset + ROUND_SENDERS) % ROUND_SENDERS;
      if (answered < 0) continue;
      for (i = 0; i < vip_count && vips[i] != sender_ip; i++) {
      }
      if (i == vip_count) continue;
      inet_ntop(AF_INET, &sender_ip, vip_text, sizeof vip_text);
      if (printf("A %ld %s %02x:%02x:%02x:%02x:%02x:%02x %lld\n", answered, vip_text, frame[22],
                 frame[23], frame[24], frame[25], frame[26], frame[27], realtime_us()) < 0) {
        stop_requested = 1;
        break;
      }
    }
  }
  close(fd);
  return result;
}
