/*
 * floatip_tickle: TCP "tickle" ACKs (what CTDB sends after an IP takeover). For each
 * connection a client had with the VIP's previous owner, the new owner sends an ACK from the
 * VIP with sequence and acknowledgement 0. The client's stack answers it with an ACK of its
 * own (the segment is out of window); that reaches the new owner's kernel, which has no
 * socket for the 4-tuple and answers with a reset: the client learns at once that its
 * connection is gone, instead of when its retransmission timer gives up.
 *
 * IPv4: one raw socket (IPPROTO_RAW: the header is ours). IPv6: a raw IPPROTO_TCP socket
 * bound to the VIP (the kernel writes the IPv6 header with the VIP as its source, and the TCP
 * checksum at offset 16, IPV6_CHECKSUM). One sendto per segment, synchronous: a few thousand
 * segments take milliseconds. Needs CAP_NET_RAW.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "floatip_tickle.h"

#define TICKLE_CALL(env, call)                                      \
  do {                                                              \
    if ((call) != napi_ok) {                                        \
      napi_throw_error((env), "EINTERNAL", "N-API call failed");    \
      return NULL;                                                  \
    }                                                               \
  } while (0)

static uint16_t checksum(const void* data, size_t length, uint32_t sum) {
  const uint8_t* bytes = data;
  for (size_t i = 0; i + 1 < length; i += 2) sum += (uint32_t)(bytes[i] << 8 | bytes[i + 1]);
  if (length & 1) sum += (uint32_t)(bytes[length - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

static napi_value throw_code(napi_env env, const char* code, const char* message) {
  napi_throw_error(env, code, message);
  return NULL;
}

/* The TCP header of a tickle: ACK, sequence and acknowledgement 0, window 1234. */
static void tickle_header(struct tcphdr* tcp, int from_port, int to_port) {
  memset(tcp, 0, sizeof *tcp);
  tcp->source = htons((uint16_t)from_port);
  tcp->dest = htons((uint16_t)to_port);
  tcp->doff = sizeof *tcp / 4;
  tcp->ack = 1;
  tcp->window = htons(1234);
}

static napi_value sent_or_throw(napi_env env, int sent, int err, const char* to_text) {
  if (sent == 0) {
    char message[128];
    snprintf(message, sizeof message, "sendto %s: %s", to_text, strerror(err));
    return throw_code(env, "ESEND", message);
  }
  napi_value result;
  TICKLE_CALL(env, napi_create_int32(env, sent, &result));
  return result;
}

static napi_value tickle6(napi_env env, const struct in6_addr* from, int from_port,
                          const struct in6_addr* to, int to_port, int count, const char* to_text) {
  struct tcphdr tcp;
  tickle_header(&tcp, from_port, to_port);
  int fd = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) {
    char message[128];
    snprintf(message, sizeof message, "socket(AF_INET6, SOCK_RAW): %s", strerror(errno));
    return throw_code(env, errno == EPERM ? "EPERM" : "ESOCKET", message);
  }
  /* The kernel fills the checksum (offset 16 of the TCP header) over its pseudo-header. */
  int offset = 16;
  struct sockaddr_in6 source;
  memset(&source, 0, sizeof source);
  source.sin6_family = AF_INET6;
  source.sin6_addr = *from;
  if (setsockopt(fd, IPPROTO_IPV6, IPV6_CHECKSUM, &offset, sizeof offset) != 0 ||
      bind(fd, (struct sockaddr*)&source, sizeof source) != 0) {
    char message[128];
    snprintf(message, sizeof message, "raw IPv6 socket on the VIP: %s", strerror(errno));
    close(fd);
    return throw_code(env, "ESOCKET", message);
  }
  struct sockaddr_in6 destination;
  memset(&destination, 0, sizeof destination);
  destination.sin6_family = AF_INET6;
  destination.sin6_addr = *to;
  int sent = 0;
  for (int i = 0; i < count; i += 1) {
    if (sendto(fd, &tcp, sizeof tcp, MSG_DONTWAIT, (struct sockaddr*)&destination,
               sizeof destination) == (ssize_t)sizeof tcp)
      sent += 1;
  }
  int err = errno;
  close(fd);
  return sent_or_throw(env, sent, err, to_text);
}

/*
 * tcpTickle(fromIp, fromPort, toIp, toPort, count): sends `count` (1..10) ACKs from
 * fromIp:fromPort to toIp:toPort (both IPv4 or both IPv6), sequence and acknowledgement 0,
 * window 1234. Returns the number sent. Throws with code EINVAL for bad arguments, or the errno name of socket/sendto.
 */
static napi_value js_tcp_tickle(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value args[5];
  TICKLE_CALL(env, napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  if (argc < 5) return throw_code(env, "EINVAL", "tcpTickle(fromIp, fromPort, toIp, toPort, count)");
  char from_text[INET6_ADDRSTRLEN + 1];
  char to_text[INET6_ADDRSTRLEN + 1];
  size_t length = 0;
  int32_t from_port = 0;
  int32_t to_port = 0;
  int32_t count = 0;
  if (napi_get_value_string_utf8(env, args[0], from_text, sizeof from_text, &length) != napi_ok ||
      napi_get_value_string_utf8(env, args[2], to_text, sizeof to_text, &length) != napi_ok ||
      napi_get_value_int32(env, args[1], &from_port) != napi_ok ||
      napi_get_value_int32(env, args[3], &to_port) != napi_ok ||
      napi_get_value_int32(env, args[4], &count) != napi_ok)
    return throw_code(env, "EINVAL", "tcpTickle: two IP addresses, two ports and a count");
  if (from_port < 1 || from_port > 65535 || to_port < 1 || to_port > 65535 || count < 1 ||
      count > 10)
    return throw_code(env, "EINVAL", "tcpTickle: ports 1..65535, count 1..10");
  struct in6_addr from6;
  struct in6_addr to6;
  if (inet_pton(AF_INET6, from_text, &from6) == 1) {
    if (inet_pton(AF_INET6, to_text, &to6) != 1)
      return throw_code(env, "EINVAL", "tcpTickle: both addresses of one family");
    return tickle6(env, &from6, from_port, &to6, to_port, count, to_text);
  }
  struct in_addr from;
  struct in_addr to;
  if (inet_pton(AF_INET, from_text, &from) != 1 || inet_pton(AF_INET, to_text, &to) != 1)
    return throw_code(env, "EINVAL", "tcpTickle: the addresses must be IPv4 or IPv6, one family");

  struct {
    struct iphdr ip;
    struct tcphdr tcp;
  } packet;
  memset(&packet, 0, sizeof packet);
  packet.ip.version = 4;
  packet.ip.ihl = sizeof packet.ip / 4;
  packet.ip.tot_len = htons(sizeof packet);
  packet.ip.ttl = 255;
  packet.ip.protocol = IPPROTO_TCP;
  packet.ip.saddr = from.s_addr;
  packet.ip.daddr = to.s_addr;
  packet.ip.check = htons(checksum(&packet.ip, sizeof packet.ip, 0));
  tickle_header(&packet.tcp, from_port, to_port);
  /* TCP checksum over the pseudo-header (source, destination, protocol, length) and segment. */
  uint32_t pseudo = 0;
  const uint8_t* s = (const uint8_t*)&packet.ip.saddr;
  const uint8_t* d = (const uint8_t*)&packet.ip.daddr;
  pseudo += (uint32_t)(s[0] << 8 | s[1]) + (uint32_t)(s[2] << 8 | s[3]);
  pseudo += (uint32_t)(d[0] << 8 | d[1]) + (uint32_t)(d[2] << 8 | d[3]);
  pseudo += IPPROTO_TCP + (uint32_t)sizeof packet.tcp;
  packet.tcp.check = htons(checksum(&packet.tcp, sizeof packet.tcp, pseudo));

  int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (fd < 0) {
    char message[128];
    snprintf(message, sizeof message, "socket(AF_INET, SOCK_RAW): %s", strerror(errno));
    return throw_code(env, errno == EPERM ? "EPERM" : "ESOCKET", message);
  }
  struct sockaddr_in destination;
  memset(&destination, 0, sizeof destination);
  destination.sin_family = AF_INET;
  destination.sin_addr = to;
  int sent = 0;
  for (int i = 0; i < count; i += 1) {
    if (sendto(fd, &packet, sizeof packet, MSG_DONTWAIT, (struct sockaddr*)&destination,
               sizeof destination) == (ssize_t)sizeof packet)
      sent += 1;
  }
  int err = errno;
  close(fd);
  return sent_or_throw(env, sent, err, to_text);
}

napi_status floatip_tickle_init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"tcpTickle", NULL, js_tcp_tickle, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof properties / sizeof properties[0],
                                properties);
}
