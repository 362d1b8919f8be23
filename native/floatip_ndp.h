/*
 * floatip_ndp: the IPv6 half of floatip_arp (floatip_ndp.c). Neighbour Discovery frames for
 * IPv6 VIPs: unsolicited Neighbour Advertisements (the IPv6 gratuitous ARP, RFC 4861 §7.2.6)
 * and duplicate-address-detection Neighbour Solicitations (the IPv6 ARP probe, RFC 4862
 * §5.4), plus the reader that recognises another node's claim to an address. No N-API here:
 * the probe half runs on the libuv thread pool.
 */
#ifndef FLOATIP_NDP_H
#define FLOATIP_NDP_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 14 Ethernet + 40 IPv6 + 24 NA + 8 Target Link-Layer Address option. */
#define NDP_NA_FRAME_BYTES 86
/* 14 Ethernet + 40 IPv6 + 24 NS; no option (a DAD probe has no source link-layer address). */
#define NDP_NS_FRAME_BYTES 78

/* NULL when `address` may be a VIP, else why not ("link-local", "multicast", ...). */
const char* ndp_vip_problem(const struct in6_addr* address);

/* The solicited-node group ff02::1:ffXX:XXXX of `target` and its MAC 33:33:ff:XX:XX:XX. */
void ndp_solicited_node(const struct in6_addr* target, struct in6_addr* group, uint8_t mac[6]);

/* Whether IPv6 forwarding is on for `ifname` (/proc/sys/net/ipv6/conf/IFNAME/forwarding reads
 * 1, in the caller's network namespace); false when unreadable. Sets the NA's Router flag. */
bool ndp_interface_forwarding(const char* ifname);

/* Unsolicited NA for `target` from `mac`: to ff02::1 (33:33:00:00:00:01), IPv6 source = target,
 * hop limit 255, flags O (and R when `router`), option Target Link-Layer Address = mac. */
void ndp_build_unsolicited_na(uint8_t frame[NDP_NA_FRAME_BYTES], const uint8_t mac[6],
                              const struct in6_addr* target, bool router);

/* DAD NS for `target` from `mac`: IPv6 source ::, to the solicited-node group of the target. */
void ndp_build_dad_ns(uint8_t frame[NDP_NS_FRAME_BYTES], const uint8_t mac[6],
                      const struct in6_addr* target);

/*
 * Reads one received Ethernet frame (`length` captured bytes). Returns true when another node
 * claims an address: a Neighbour Advertisement (its target; `mac` = the Target Link-Layer
 * Address option, else the Ethernet source), or a DAD Neighbour Solicitation (source ::) from
 * a concurrent prober (its target; `mac` = the Ethernet source). Frames from `own_mac`, and
 * claims naming `own_mac`, are not claims.
 */
bool ndp_read_claim(const uint8_t* frame, size_t length, const uint8_t own_mac[6],
                    struct in6_addr* target, uint8_t mac[6]);

/* Attaches a classic BPF filter that passes only ICMPv6 NS/NA with hop limit 255 (an
 * optimisation: ndp_read_claim checks every frame anyway). Returns 0 or -1 with errno. */
int ndp_attach_filter(int fd);

#endif
