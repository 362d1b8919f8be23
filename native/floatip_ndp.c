/*
 * floatip_ndp: IPv6 Neighbour Discovery frames for floatip_arp (see floatip_ndp.h).
 *
 * Frame layouts (byte offsets from the start of the Ethernet frame):
 *
 *   Unsolicited Neighbour Advertisement, 86 bytes (RFC 4861 §4.4, §7.2.6):
 *     0  Ethernet destination 33:33:00:00:00:01     6  Ethernet source = MAC
 *    12  EtherType 0x86dd
 *    14  IPv6: 0x60 00 00 00 (version 6, traffic class 0, flow 0), payload length 32,
 *        next header 58, hop limit 255, source = VIP, destination ff02::1
 *    54  ICMPv6 type 136, code 0, checksum (IPv6 pseudo-header + 32 bytes),
 *    58  flags R 0x80 (only with forwarding on), S 0x40 (never), O 0x20 (always), reserved
 *    62  target = VIP
 *    78  option Target Link-Layer Address: type 2, length 1 (8 bytes), MAC
 *
 *   Duplicate-address-detection Neighbour Solicitation, 78 bytes (RFC 4861 §4.3, RFC 4862 §5.4):
 *     0  Ethernet destination 33:33:ff:XX:XX:XX      6  Ethernet source = MAC
 *    12  EtherType 0x86dd
 *    14  IPv6: payload length 24, next header 58, hop limit 255, source :: (unspecified),
 *        destination ff02::1:ffXX:XXXX (solicited-node group of the VIP)
 *    54  ICMPv6 type 135, code 0, checksum, 4 reserved bytes
 *    62  target = VIP; no option (a source link-layer address is forbidden with source ::)
 */
#include "floatip_ndp.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ETH_HEADER 14
#define IP6_HEADER 40
#define ICMP6_OFFSET (ETH_HEADER + IP6_HEADER)
#define ND_BODY 24 /* type, code, checksum, flags/reserved, target */
#define IPPROTO_ICMPV6_NUMBER 58
#define ND_NEIGHBOR_SOLICIT 135
#define ND_NEIGHBOR_ADVERT 136
#define ND_OPT_SOURCE_LINKADDR 1
#define ND_OPT_TARGET_LINKADDR 2
#define NA_FLAG_ROUTER 0x80
#define NA_FLAG_OVERRIDE 0x20

static const uint8_t all_nodes[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

const char* ndp_vip_problem(const struct in6_addr* address) {
  const uint8_t* a = address->s6_addr;
  static const uint8_t zero[16] = {0};
  if (memcmp(a, zero, 16) == 0) return "the unspecified IPv6 address, which cannot be a VIP";
  if (memcmp(a, zero, 15) == 0 && a[15] == 1)
    return "the IPv6 loopback address, which cannot be a VIP";
  if (a[0] == 0xff) return "an IPv6 multicast address (ff00::/8), which cannot be a VIP";
  if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
    return "an IPv6 link-local address (fe80::/10), which cannot be a VIP";
  return NULL;
}

void ndp_solicited_node(const struct in6_addr* target, struct in6_addr* group, uint8_t mac[6]) {
  static const uint8_t prefix[13] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff};
  memcpy(group->s6_addr, prefix, 13);
  memcpy(group->s6_addr + 13, target->s6_addr + 13, 3);
  /* RFC 2464 §7: 33:33 followed by the last four bytes of the IPv6 destination. */
  mac[0] = 0x33;
  mac[1] = 0x33;
  memcpy(mac + 2, group->s6_addr + 12, 4);
}

bool ndp_interface_forwarding(const char* ifname) {
  char path[96], value[8] = "";
  ssize_t length;
  int fd;
  /* An interface name never holds '/', and the caller looked it up already. */
  if (strchr(ifname, '/') != NULL || strlen(ifname) >= IFNAMSIZ) return false;
  snprintf(path, sizeof path, "/proc/sys/net/ipv6/conf/%s/forwarding", ifname);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  length = read(fd, value, sizeof value - 1);
  close(fd);
  return length > 0 && value[0] == '1' && (length == 1 || value[1] == '\n');
}

/* ICMPv6 checksum (RFC 4443 §2.3): ones' complement sum over the IPv6 pseudo-header (source,
 * destination, upper-layer length, next header 58) and the message with its checksum zeroed. */
static uint16_t icmpv6_checksum(const uint8_t source[16], const uint8_t destination[16],
                                const uint8_t* message, size_t length) {
  uint32_t sum = 0;
  size_t i;
  for (i = 0; i < 16; i += 2) {
    sum += (uint32_t)(source[i] << 8 | source[i + 1]);
    sum += (uint32_t)(destination[i] << 8 | destination[i + 1]);
  }
  sum += (uint32_t)(length >> 16) + (uint32_t)(length & 0xffff);
  sum += IPPROTO_ICMPV6_NUMBER;
  for (i = 0; i + 1 < length; i += 2) sum += (uint32_t)(message[i] << 8 | message[i + 1]);
  if (length & 1) sum += (uint32_t)(message[length - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

/* Ethernet + IPv6 header; the ICMPv6 message (payload_length bytes) follows at ICMP6_OFFSET. */
static void build_headers(uint8_t* frame, const uint8_t destination_mac[6], const uint8_t mac[6],
                          const uint8_t source[16], const uint8_t destination[16],
                          uint16_t payload_length) {
  uint8_t* ip = frame + ETH_HEADER;
  memcpy(frame, destination_mac, 6);
  memcpy(frame + 6, mac, 6);
  frame[12] = 0x86;
  frame[13] = 0xdd;
  ip[0] = 0x60;
  ip[1] = ip[2] = ip[3] = 0;
  ip[4] = (uint8_t)(payload_length >> 8);
  ip[5] = (uint8_t)payload_length;
  ip[6] = IPPROTO_ICMPV6_NUMBER;
  ip[7] = 255; /* RFC 4861 §7.1: a receiver drops ND messages with any other hop limit. */
  memcpy(ip + 8, source, 16);
  memcpy(ip + 24, destination, 16);
}

static void finish_checksum(uint8_t* frame, uint16_t payload_length) {
  uint8_t* message = frame + ICMP6_OFFSET;
  uint16_t sum;
  message[2] = message[3] = 0;
  sum = icmpv6_checksum(frame + ETH_HEADER + 8, frame + ETH_HEADER + 24, message, payload_length);
  message[2] = (uint8_t)(sum >> 8);
  message[3] = (uint8_t)sum;
}

void ndp_build_unsolicited_na(uint8_t frame[NDP_NA_FRAME_BYTES], const uint8_t mac[6],
                              const struct in6_addr* target, bool router) {
  static const uint8_t all_nodes_mac[6] = {0x33, 0x33, 0, 0, 0, 1};
  const uint16_t payload_length = NDP_NA_FRAME_BYTES - ICMP6_OFFSET;
  uint8_t* message = frame + ICMP6_OFFSET;
  build_headers(frame, all_nodes_mac, mac, target->s6_addr, all_nodes, payload_length);
  memset(message, 0, payload_length);
  message[0] = ND_NEIGHBOR_ADVERT;
  message[1] = 0;
  /* Override: replace the cached MAC (§7.2.5). Solicited: clear, nobody asked. Router: what
   * this node is on the link, so a neighbour does not drop its default route through it. */
  message[4] = NA_FLAG_OVERRIDE | (router ? NA_FLAG_ROUTER : 0);
  memcpy(message + 8, target->s6_addr, 16);
  message[24] = ND_OPT_TARGET_LINKADDR;
  message[25] = 1; /* in units of 8 bytes */
  memcpy(message + 26, mac, 6);
  finish_checksum(frame, payload_length);
}

void ndp_build_dad_ns(uint8_t frame[NDP_NS_FRAME_BYTES], const uint8_t mac[6],
                      const struct in6_addr* target) {
  static const uint8_t unspecified[16] = {0};
  const uint16_t payload_length = NDP_NS_FRAME_BYTES - ICMP6_OFFSET;
  uint8_t* message = frame + ICMP6_OFFSET;
  struct in6_addr group;
  uint8_t group_mac[6];
  ndp_solicited_node(target, &group, group_mac);
  build_headers(frame, group_mac, mac, unspecified, group.s6_addr, payload_length);
  memset(message, 0, payload_length);
  message[0] = ND_NEIGHBOR_SOLICIT;
  memcpy(message + 8, target->s6_addr, 16);
  finish_checksum(frame, payload_length);
}

bool ndp_read_claim(const uint8_t* frame, size_t length, const uint8_t own_mac[6],
                    struct in6_addr* target, uint8_t mac[6]) {
  static const uint8_t unspecified[16] = {0};
  const uint8_t* ip = frame + ETH_HEADER;
  const uint8_t* message = frame + ICMP6_OFFSET;
  const uint8_t* claimed_mac = frame + 6;
  size_t payload_length, end, offset;
  if (length < ICMP6_OFFSET + ND_BODY) return false;
  if (frame[12] != 0x86 || frame[13] != 0xdd) return false;
  if (memcmp(frame + 6, own_mac, 6) == 0) return false;
  if ((ip[0] >> 4) != 6 || ip[6] != IPPROTO_ICMPV6_NUMBER || ip[7] != 255) return false;
  payload_length = (size_t)(ip[4] << 8 | ip[5]);
  if (payload_length < ND_BODY || message[1] != 0) return false;
  end = ICMP6_OFFSET + payload_length;
  if (end > length) end = length; /* options past the captured bytes are not read */
  memcpy(target->s6_addr, message + 8, 16);
  if (target->s6_addr[0] == 0xff) return false; /* §7.1.1/§7.1.2: target is never multicast */

  if (message[0] == ND_NEIGHBOR_SOLICIT) {
    struct in6_addr group;
    uint8_t group_mac[6];
    /* Only a DAD probe (source ::, to the target's solicited-node group) is a claim: an
     * ordinary NS comes from a host resolving the address, not one that wants it. */
    if (memcmp(ip + 8, unspecified, 16) != 0) return false;
    ndp_solicited_node(target, &group, group_mac);
    if (memcmp(ip + 24, group.s6_addr, 16) != 0) return false;
    for (offset = ICMP6_OFFSET + ND_BODY; offset + 2 <= end;) {
      size_t option_length = (size_t)frame[offset + 1] * 8;
      if (option_length == 0) return false; /* §4.6: length 0 is invalid, drop */
      /* §7.1.1: no source link-layer address with source :: (the kernel drops it too). */
      if (frame[offset] == ND_OPT_SOURCE_LINKADDR) return false;
      offset += option_length;
    }
  } else if (message[0] == ND_NEIGHBOR_ADVERT) {
    for (offset = ICMP6_OFFSET + ND_BODY; offset + 2 <= end;) {
      size_t option_length = (size_t)frame[offset + 1] * 8;
      if (option_length == 0) return false;
      if (frame[offset] == ND_OPT_TARGET_LINKADDR && option_length == 8 && offset + 8 <= end)
        claimed_mac = frame + offset + 2;
      offset += option_length;
    }
  } else {
    return false;
  }
  if (memcmp(claimed_mac, own_mac, 6) == 0) return false;
  memcpy(mac, claimed_mac, 6);
  return true;
}

int ndp_attach_filter(int fd) {
  /* Offsets are from the Ethernet header (SOCK_RAW). */
  struct sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),                       /* 0: EtherType */
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x86dd, 0, 8),            /* 1 */
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 20),                       /* 2: next header */
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_ICMPV6_NUMBER, 0, 6), /* 3 */
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 21),                       /* 4: hop limit */
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 255, 0, 4),               /* 5 */
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 54),                       /* 6: ICMPv6 type */
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ND_NEIGHBOR_SOLICIT, 1, 0), /* 7 */
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ND_NEIGHBOR_ADVERT, 0, 1),  /* 8 */
      BPF_STMT(BPF_RET | BPF_K, 0xffff),                            /* 9: accept */
      BPF_STMT(BPF_RET | BPF_K, 0),                                 /* 10: drop */
  };
  struct sock_fprog program = {sizeof code / sizeof code[0], code};
  return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program);
}
