/*
 * floatip_arp: gratuitous ARP announcements and ARP occupancy probes on an AF_PACKET socket,
 * and their IPv6 counterparts (Neighbour Discovery, floatip_ndp.c) for IPv6 VIPs.
 *
 * Why native: iputils `arping -U` spends about a second per call and `arping -i 0` can hang,
 * while a failover must announce up to 1,000 VIPs in well under a second. One raw socket per
 * call sends every frame back to back.
 *
 * Exports (all synchronous except probe):
 *   interfaceMac(ifname) -> "aa:bb:cc:dd:ee:ff"
 *   announce(ifname, ipList, macOrEmpty, forms) -> number of frames sent
 *       ipList: IPv4 and IPv6 addresses (text, no prefix), mixed as you like.
 *       IPv4: gratuitous ARP; forms: "both" (default, also when undefined), "request" or
 *       "reply" (two frames per VIP with "both", else one).
 *       IPv6: one unsolicited Neighbour Advertisement per VIP (RFC 4861 §7.2.6) to ff02::1,
 *       from the VIP, Override set, Solicited clear, Router set when
 *       /proc/sys/net/ipv6/conf/IFNAME/forwarding is 1, Target Link-Layer Address = mac.
 *       `forms` does not apply to it.
 *   probe(ifname, ip | ipList, timeoutMs) -> Promise
 *       ip string:  resolves { occupied, mac? }
 *       ip list:    resolves [{ ip, occupied, mac? }, ...] in the order given (`ip` as given)
 *       IPv4: RFC 5227 ARP probe (sender IP 0.0.0.0); occupied when another MAC sends ARP
 *       with the VIP as sender IP.
 *       IPv6: RFC 4862 duplicate address detection: Neighbour Solicitation from :: to the
 *       VIP's solicited-node group (joined on the socket meanwhile); occupied when a Neighbour
 *       Advertisement for the VIP arrives (mac: its Target Link-Layer Address, else the
 *       Ethernet source), or another MAC's DAD solicitation for it (a concurrent prober).
 *       Both families send a second round halfway through timeoutMs.
 *   The probe runs on the libuv thread pool (napi async work) so the event loop keeps running.
 *   IPv6 link-local (fe80::/10), multicast, unspecified and loopback addresses are invalid.
 *
 * Errors are thrown (or rejected) as Error objects whose `code` is one of
 * ERR_ARP_INVALID_ARGUMENT, ERR_ARP_NO_INTERFACE, ERR_ARP_NOT_ETHERNET, ERR_ARP_PERMISSION,
 * ERR_ARP_SOCKET, ERR_ARP_SEND (the same codes for IPv6).
 *
 * Sockets are created in the network namespace of the calling process, so the addon works
 * unchanged under `ip netns exec`.
 *
 * The same addon also exports the synchronous system calls of floatip_sys.c (realtime
 * scheduling, mlockall, rtnetlink address listing and lifetime renewal).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <node_api.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "floatip_ndp.h"
#include "floatip_sys.h"
#include "floatip_tickle.h"
#include "floatip_udp.h"
#include "floatip_hmac.h"
#include "floatip_timer.h"

#define FRAME_BYTES 42 /* 14 Ethernet + 28 ARP; the NIC pads to the 60-byte minimum. */
#define MAX_ADDRESSES 65536
#define MAX_PROBE_TIMEOUT_MS 60000
/* Above this many distinct solicited-node groups a probe joins all multicast instead: a NIC
 * has few exact multicast filter slots, and reprogramming them per group costs time. */
#define MAX_GROUP_MEMBERSHIPS 64

/* One VIP of a call: IPv4 (network order) or IPv6, and the text it was given as. */
typedef struct {
  int family; /* AF_INET or AF_INET6 */
  uint32_t v4;
  struct in6_addr v6;
  char text[64]; /* INET6_ADDRSTRLEN would do; 64 = the buffer it is read into */
} vip_address;

typedef struct {
  char code[40];
  char message[256];
} arp_error;

static void set_error(arp_error* error, const char* code, const char* format, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(arp_error* error, const char* code, const char* format, ...) {
  va_list args;
  snprintf(error->code, sizeof error->code, "%s", code);
  va_start(args, format);
  vsnprintf(error->message, sizeof error->message, format, args);
  va_end(args);
}

static void set_errno_error(arp_error* error, int err, const char* what, const char* ifname) {
  if (err == EPERM || err == EACCES) {
    set_error(error, "ERR_ARP_PERMISSION",
              "floatip_arp: %s on '%s' failed: %s (needs root or CAP_NET_RAW)", what, ifname,
              strerror(err));
  } else if (err == ENODEV || err == ENXIO) {
    set_error(error, "ERR_ARP_NO_INTERFACE", "floatip_arp: no such interface '%s' (%s)", ifname,
              what);
  } else {
    set_error(error, "ERR_ARP_SOCKET", "floatip_arp: %s on '%s' failed: %s", what, ifname,
              strerror(err));
  }
}

/* ---------- socket helpers (no N-API here: these also run on the thread pool) ---------- */

static int interface_mac(const char* ifname, uint8_t mac[6], arp_error* error) {
  struct ifreq request;
  int fd;
  if (strlen(ifname) == 0 || strlen(ifname) >= IFNAMSIZ) {
    set_error(error, "ERR_ARP_INVALID_ARGUMENT", "floatip_arp: invalid interface name '%s'",
              ifname);
    return -1;
  }
  fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    set_errno_error(error, errno, "socket(AF_INET)", ifname);
    return -1;
  }
  memset(&request, 0, sizeof request);
  snprintf(request.ifr_name, IFNAMSIZ, "%s", ifname);
  if (ioctl(fd, SIOCGIFHWADDR, &request) < 0) {
    int err = errno;
    close(fd);
    set_errno_error(error, err, "SIOCGIFHWADDR", ifname);
    return -1;
  }
  close(fd);
  if (request.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
    set_error(error, "ERR_ARP_NOT_ETHERNET",
              "floatip_arp: interface '%s' is not Ethernet (hardware type %d)", ifname,
              request.ifr_hwaddr.sa_family);
    return -1;
  }
  memcpy(mac, request.ifr_hwaddr.sa_data, 6);
  return 0;
}

/* Opens an ARP-only packet socket bound to the interface; fills the broadcast destination. */
static int open_arp_socket(const char* ifname, struct sockaddr_ll* destination, arp_error* error) {
  unsigned int ifindex = if_nametoindex(ifname);
  struct sockaddr_ll local;
  int fd;
  if (ifindex == 0) {
    set_error(error, "ERR_ARP_NO_INTERFACE", "floatip_arp: no such interface '%s'", ifname);
    return -1;
  }
  fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ARP));
  if (fd < 0) {
    set_errno_error(error, errno, "socket(AF_PACKET)", ifname);
    return -1;
  }
  memset(&local, 0, sizeof local);
  local.sll_family = AF_PACKET;
  local.sll_protocol = htons(ETH_P_ARP);
  local.sll_ifindex = (int)ifindex;
  if (bind(fd, (struct sockaddr*)&local, sizeof local) < 0) {
    int err = errno;
    close(fd);
    set_errno_error(error, err, "bind(AF_PACKET)", ifname);
    return -1;
  }
  memset(destination, 0, sizeof *destination);
  destination->sll_family = AF_PACKET;
  destination->sll_protocol = htons(ETH_P_ARP);
  destination->sll_ifindex = (int)ifindex;
  destination->sll_halen = 6;
  memset(destination->sll_addr, 0xff, 6);
  return fd;
}

/* Builds a broadcast ARP frame. Addresses are in network byte order. */
static void build_frame(uint8_t frame[FRAME_BYTES], uint16_t operation, const uint8_t sender_mac[6],
                        uint32_t sender_ip, const uint8_t target_mac[6], uint32_t target_ip) {
  uint16_t value;
  memset(frame, 0xff, 6);             /* Ethernet destination: broadcast */
  memcpy(frame + 6, sender_mac, 6);   /* Ethernet source */
  value = htons(ETH_P_ARP);
  memcpy(frame + 12, &value, 2);
  value = htons(ARPHRD_ETHER);
  memcpy(frame + 14, &value, 2);
  value = htons(ETH_P_IP);
  memcpy(frame + 16, &value, 2);
  frame[18] = 6;
  frame[19] = 4;
  value = htons(operation);
  memcpy(frame + 20, &value, 2);
  memcpy(frame + 22, sender_mac, 6);
  memcpy(frame + 28, &sender_ip, 4);
  memcpy(frame + 32, target_mac, 6);
  memcpy(frame + 38, &target_ip, 4);
}

/* Sends one frame; retries briefly when the device queue is full instead of dropping it. */
static int send_frame(int fd, const uint8_t* frame, size_t length,
                      const struct sockaddr_ll* destination, const char* ifname,
                      arp_error* error) {
  int attempt;
  for (attempt = 0; attempt < 200; attempt++) {
    ssize_t sent = sendto(fd, frame, length, 0, (const struct sockaddr*)destination,
                          sizeof *destination);
    if (sent == (ssize_t)length) return 0;
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && (errno == ENOBUFS || errno == EAGAIN)) {
      struct timespec pause = {0, 200000}; /* 0.2 ms, at most 40 ms in all */
      nanosleep(&pause, NULL);
      continue;
    }
    if (sent < 0 && errno == ENETDOWN) {
      set_error(error, "ERR_ARP_SEND", "floatip_arp: interface '%s' is down", ifname);
    } else if (sent < 0) {
      set_errno_error(error, errno, "sendto", ifname);
      snprintf(error->code, sizeof error->code, "%s", "ERR_ARP_SEND");
    } else {
      set_error(error, "ERR_ARP_SEND", "floatip_arp: short send on '%s'", ifname);
    }
    return -1;
  }
  set_error(error, "ERR_ARP_SEND", "floatip_arp: send queue of '%s' stayed full", ifname);
  return -1;
}

/* The destination of IPv6 frames sent on a packet socket of `ifindex`: only the ifindex and
 * the protocol (skb->protocol) matter, a SOCK_RAW frame carries its own Ethernet header. */
static void ipv6_destination(const struct sockaddr_ll* base, struct sockaddr_ll* destination) {
  static const uint8_t all_nodes_mac[6] = {0x33, 0x33, 0, 0, 0, 1};
  *destination = *base;
  destination->sll_protocol = htons(ETH_P_IPV6);
  destination->sll_halen = 6;
  memcpy(destination->sll_addr, all_nodes_mac, 6);
}

static int64_t monotonic_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* ---------- N-API glue ---------- */

#define NAPI_CALL(env, call)                                             \
  do {                                                                   \
    if ((call) != napi_ok) {                                             \
      napi_throw_error((env), "ERR_ARP_INTERNAL", "floatip_arp: " #call); \
      return NULL;                                                       \
    }                                                                    \
  } while (0)

static napi_value throw_arp_error(napi_env env, const arp_error* error) {
  napi_throw_error(env, error->code, error->message);
  return NULL;
}

static napi_value throw_invalid(napi_env env, const char* message) {
  napi_throw_type_error(env, "ERR_ARP_INVALID_ARGUMENT", message);
  return NULL;
}

/* Reads a JS string argument into buffer; returns 0 on success. */
static int read_string(napi_env env, napi_value value, char* buffer, size_t size) {
  napi_valuetype type;
  size_t length = 0;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_string) return -1;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) return -1;
  if (length + 1 > size) return -1;
  if (napi_get_value_string_utf8(env, value, buffer, size, &length) != napi_ok) return -1;
  return 0;
}

static int parse_mac(const char* text, uint8_t mac[6]) {
  unsigned int parts[6];
  char tail;
  int i;
  if (sscanf(text, "%2x:%2x:%2x:%2x:%2x:%2x%c", &parts[0], &parts[1], &parts[2], &parts[3],
             &parts[4], &parts[5], &tail) != 6)
    return -1;
  for (i = 0; i < 6; i++) mac[i] = (uint8_t)parts[i];
  return 0;
}

static void format_mac(const uint8_t mac[6], char out[18]) {
  snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
           mac[5]);
}

/* Parses one IPv4 or IPv6 address (text, no prefix, no zone). Returns NULL on success, else
 * what is wrong with it (for the message of an ERR_ARP_INVALID_ARGUMENT). */
static const char* parse_vip(const char* text, vip_address* out) {
  struct in_addr v4;
  memset(out, 0, sizeof *out);
  if (inet_pton(AF_INET, text, &v4) == 1) {
    out->family = AF_INET;
    out->v4 = v4.s_addr;
  } else if (inet_pton(AF_INET6, text, &out->v6) == 1) {
    const char* problem = ndp_vip_problem(&out->v6);
    if (problem != NULL) return problem;
    out->family = AF_INET6;
  } else {
    return "not an IPv4 or IPv6 address string";
  }
  snprintf(out->text, sizeof out->text, "%s", text);
  return NULL;
}

/* Reads an array of IPv4/IPv6 strings; returns a malloc'd array or NULL after throwing. */
static vip_address* read_address_list(napi_env env, napi_value list, uint32_t* count) {
  bool is_array = false;
  uint32_t i;
  vip_address* addresses;
  if (napi_is_array(env, list, &is_array) != napi_ok || !is_array) {
    throw_invalid(env, "floatip_arp: expected an array of IPv4 or IPv6 address strings");
    return NULL;
  }
  napi_get_array_length(env, list, count);
  if (*count > MAX_ADDRESSES) {
    throw_invalid(env, "floatip_arp: too many addresses in one call (limit 65536)");
    return NULL;
  }
  addresses = malloc(sizeof(vip_address) * (*count > 0 ? *count : 1));
  if (addresses == NULL) {
    napi_throw_error(env, "ERR_ARP_INTERNAL", "floatip_arp: out of memory");
    return NULL;
  }
  for (i = 0; i < *count; i++) {
    napi_value element;
    char text[64];
    const char* problem = "not an IPv4 or IPv6 address string";
    napi_get_element(env, list, i, &element);
    if (read_string(env, element, text, sizeof text) != 0 ||
        (problem = parse_vip(text, &addresses[i])) != NULL) {
      char message[160];
      snprintf(message, sizeof message, "floatip_arp: element %u is %s", i, problem);
      free(addresses);
      throw_invalid(env, message);
      return NULL;
    }
  }
  return addresses;
}

static napi_value js_interface_mac(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char ifname[IFNAMSIZ + 1];
  uint8_t mac[6];
  char text[18];
  arp_error error;
  napi_value result;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || read_string(env, argv[0], ifname, sizeof ifname) != 0)
    return throw_invalid(env, "floatip_arp: interfaceMac(ifname) needs an interface name");
  if (interface_mac(ifname, mac, &error) != 0) return throw_arp_error(env, &error);
  format_mac(mac, text);
  NAPI_CALL(env, napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &result));
  return result;
}

static napi_value js_announce(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  char ifname[IFNAMSIZ + 1];
  char mac_text[32] = "";
  char forms[16] = "both";
  uint8_t mac[6];
  uint8_t zero_mac[6] = {0};
  uint32_t count = 0, i;
  vip_address* addresses;
  bool send_request, send_reply, router = false;
  struct sockaddr_ll destination, destination6;
  arp_error error;
  int fd;
  double sent = 0;
  napi_value result;
  napi_valuetype type;

  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || read_string(env, argv[0], ifname, sizeof ifname) != 0)
    return throw_invalid(env, "floatip_arp: announce(ifname, ipList, mac?, forms?)");
  if (argc >= 3) {
    napi_typeof(env, argv[2], &type);
    if (type != napi_undefined && type != napi_null &&
        read_string(env, argv[2], mac_text, sizeof mac_text) != 0)
      return throw_invalid(env, "floatip_arp: announce mac must be a string (or empty)");
  }
  if (argc >= 4) {
    napi_typeof(env, argv[3], &type);
    if (type != napi_undefined && type != napi_null &&
        read_string(env, argv[3], forms, sizeof forms) != 0)
      return throw_invalid(env, "floatip_arp: announce forms must be 'both', 'request' or 'reply'");
  }
  send_request = strcmp(forms, "both") == 0 || strcmp(forms, "request") == 0;
  send_reply = strcmp(forms, "both") == 0 || strcmp(forms, "reply") == 0;
  if (!send_request && !send_reply)
    return throw_invalid(env, "floatip_arp: announce forms must be 'both', 'request' or 'reply'");
  if (mac_text[0] != '\0') {
    if (parse_mac(mac_text, mac) != 0)
      return throw_invalid(env, "floatip_arp: announce mac must look like aa:bb:cc:dd:ee:ff");
  } else if (interface_mac(ifname, mac, &error) != 0) {
    return throw_arp_error(env, &error);
  }
  addresses = read_address_list(env, argv[1], &count);
  if (addresses == NULL) return NULL;

  /* One socket for both families: the sockaddr of each sendto names the protocol. */
  fd = open_arp_socket(ifname, &destination, &error);
  if (fd < 0) {
    free(addresses);
    return throw_arp_error(env, &error);
  }
  ipv6_destination(&destination, &destination6);
  for (i = 0; i < count; i++) {
    if (addresses[i].family == AF_INET6) {
      router = ndp_interface_forwarding(ifname);
      break;
    }
  }
  for (i = 0; i < count; i++) {
    uint8_t frame[FRAME_BYTES];
    uint32_t ip = addresses[i].v4;
    if (addresses[i].family == AF_INET6) {
      uint8_t advertisement[NDP_NA_FRAME_BYTES];
      ndp_build_unsolicited_na(advertisement, mac, &addresses[i].v6, router);
      if (send_frame(fd, advertisement, sizeof advertisement, &destination6, ifname, &error) !=
          0)
        goto failed;
      sent++;
      continue;
    }
    /* Request form (RFC 5227 announcement): sender = target = VIP; target MAC ignored. */
    if (send_request) {
      build_frame(frame, ARPOP_REQUEST, mac, ip, zero_mac, ip);
      if (send_frame(fd, frame, FRAME_BYTES, &destination, ifname, &error) != 0) goto failed;
      sent++;
    }
    /* Reply form: Linux only treats a reply as gratuitous when target MAC = sender MAC. */
    if (send_reply) {
      build_frame(frame, ARPOP_REPLY, mac, ip, mac, ip);
      if (send_frame(fd, frame, FRAME_BYTES, &destination, ifname, &error) != 0) goto failed;
      sent++;
    }
  }
  close(fd);
  free(addresses);
  NAPI_CALL(env, napi_create_double(env, sent, &result));
  return result;

failed:
  close(fd);
  free(addresses);
  return throw_arp_error(env, &error);
}

/* ---------- probe: async work ---------- */

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  char ifname[IFNAMSIZ + 1];
  uint32_t count;
  vip_address* addresses;
  uint8_t* occupied;     /* per address: 0/1 */
  uint8_t (*macs)[6];    /* per address: the MAC that answered */
  int timeout_ms;
  bool single;
  arp_error error;
  bool failed;
} probe_job;

static int find_address(const probe_job* job, uint32_t address) {
  uint32_t i;
  for (i = 0; i < job->count; i++)
    if (job->addresses[i].family == AF_INET && job->addresses[i].v4 == address) return (int)i;
  return -1;
}

static int find_address6(const probe_job* job, const struct in6_addr* address) {
  uint32_t i;
  for (i = 0; i < job->count; i++)
    if (job->addresses[i].family == AF_INET6 &&
        memcmp(&job->addresses[i].v6, address, sizeof *address) == 0)
      return (int)i;
  return -1;
}

/* One round: an ARP probe per free IPv4 address on fd, a DAD NS per free IPv6 one on fd6. */
static int send_probes(probe_job* job, int fd, const struct sockaddr_ll* destination, int fd6,
                       const struct sockaddr_ll* destination6, const uint8_t mac[6]) {
  uint8_t zero_mac[6] = {0};
  uint32_t i;
  for (i = 0; i < job->count; i++) {
    if (job->occupied[i]) continue;
    if (job->addresses[i].family == AF_INET6) {
      uint8_t solicitation[NDP_NS_FRAME_BYTES];
      /* RFC 4862 §5.4.2: source ::, so no neighbour learns a mapping from it. */
      ndp_build_dad_ns(solicitation, mac, &job->addresses[i].v6);
      if (send_frame(fd6, solicitation, sizeof solicitation, destination6, job->ifname,
                     &job->error) != 0)
        return -1;
    } else {
      uint8_t frame[FRAME_BYTES];
      /* RFC 5227 probe: sender IP 0.0.0.0 so no neighbour learns a mapping from it. */
      build_frame(frame, ARPOP_REQUEST, mac, 0, zero_mac, job->addresses[i].v4);
      if (send_frame(fd, frame, FRAME_BYTES, destination, job->ifname, &job->error) != 0)
        return -1;
    }
  }
  return 0;
}

static int compare_u32(const void* a, const void* b) {
  uint32_t x = *(const uint32_t*)a, y = *(const uint32_t*)b;
  return x < y ? -1 : x > y;
}

static int add_membership(int fd, int ifindex, unsigned short type, const uint8_t mac[6],
                          const char* ifname, arp_error* error) {
  struct packet_mreq request;
  memset(&request, 0, sizeof request);
  request.mr_ifindex = ifindex;
  request.mr_type = type;
  if (mac != NULL) {
    request.mr_alen = 6;
    memcpy(request.mr_address, mac, 6);
  }
  if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &request, sizeof request) == 0) return 0;
  set_errno_error(error, errno, "PACKET_ADD_MEMBERSHIP", ifname);
  return -1;
}

/*
 * Opens the IPv6 probe socket: ICMPv6 NS/NA only (a BPF filter, attached before the socket is
 * bound to ETH_P_IPV6 so nothing else queues meanwhile), and member of the all-nodes group
 * (where a defender's NA goes) and of every probed address's solicited-node group (where a
 * concurrent prober's NS goes): a NIC filters multicast, and without the membership it would
 * drop those frames unless the kernel has joined the group for an address of its own. Closing
 * the socket drops the memberships.
 */
static int open_ndp_socket(probe_job* job, struct sockaddr_ll* destination) {
  static const uint8_t all_nodes_mac[6] = {0x33, 0x33, 0, 0, 0, 1};
  unsigned int ifindex = if_nametoindex(job->ifname);
  struct sockaddr_ll local;
  uint32_t* groups;
  uint32_t i, group_count = 0, distinct = 0;
  int fd;
  if (ifindex == 0) {
    set_error(&job->error, "ERR_ARP_NO_INTERFACE", "floatip_arp: no such interface '%s'",
              job->ifname);
    return -1;
  }
  fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0); /* protocol 0: receives nothing yet */
  if (fd < 0) {
    set_errno_error(&job->error, errno, "socket(AF_PACKET)", job->ifname);
    return -1;
  }
  ndp_attach_filter(fd); /* best effort: every frame is checked anyway */
  groups = malloc(sizeof(uint32_t) * (job->count > 0 ? job->count : 1));
  if (groups == NULL) {
    close(fd);
    set_error(&job->error, "ERR_ARP_INTERNAL", "floatip_arp: out of memory");
    return -1;
  }
  for (i = 0; i < job->count; i++) {
    const uint8_t* a = job->addresses[i].v6.s6_addr;
    if (job->addresses[i].family == AF_INET6)
      groups[group_count++] = (uint32_t)a[13] << 16 | (uint32_t)a[14] << 8 | a[15];
  }
  qsort(groups, group_count, sizeof groups[0], compare_u32);
  for (i = 0; i < group_count; i++)
    if (i == 0 || groups[i] != groups[i - 1]) groups[distinct++] = groups[i];
  if (add_membership(fd, (int)ifindex, PACKET_MR_MULTICAST, all_nodes_mac, job->ifname,
                     &job->error) != 0)
    goto failed;
  if (distinct > MAX_GROUP_MEMBERSHIPS) {
    if (add_membership(fd, (int)ifindex, PACKET_MR_ALLMULTI, NULL, job->ifname, &job->error) != 0)
      goto failed;
  } else {
    for (i = 0; i < distinct; i++) {
      uint8_t group_mac[6] = {0x33, 0x33, 0xff, (uint8_t)(groups[i] >> 16),
                              (uint8_t)(groups[i] >> 8), (uint8_t)groups[i]};
      if (add_membership(fd, (int)ifindex, PACKET_MR_MULTICAST, group_mac, job->ifname,
                         &job->error) != 0)
        goto failed;
    }
  }
  free(groups);
  groups = NULL;
  memset(&local, 0, sizeof local);
  local.sll_family = AF_PACKET;
  local.sll_protocol = htons(ETH_P_IPV6);
  local.sll_ifindex = (int)ifindex;
  if (bind(fd, (struct sockaddr*)&local, sizeof local) < 0) {
    set_errno_error(&job->error, errno, "bind(AF_PACKET)", job->ifname);
    goto failed;
  }
  ipv6_destination(&local, destination);
  return fd;

failed:
  free(groups);
  close(fd);
  return -1;
}

/* Records an ARP frame from another host that claims one of the probed addresses. */
static void inspect_frame(probe_job* job, const uint8_t* frame, ssize_t length,
                          const struct sockaddr_ll* from, const uint8_t own_mac[6]) {
  uint16_t value;
  uint32_t sender_ip;
  int index;
  if (length < FRAME_BYTES || from->sll_pkttype == PACKET_OUTGOING) return;
  memcpy(&value, frame + 12, 2);
  if (ntohs(value) != ETH_P_ARP) return;
  memcpy(&value, frame + 16, 2);
  if (ntohs(value) != ETH_P_IP || frame[18] != 6 || frame[19] != 4) return;
  if (memcmp(frame + 22, own_mac, 6) == 0) return;
  /* A reply, a request or an announcement whose sender IP is the VIP: someone holds it. */
  memcpy(&sender_ip, frame + 28, 4);
  index = find_address(job, sender_ip);
  if (index < 0 || job->occupied[index]) return;
  job->occupied[index] = 1;
  memcpy(job->macs[index], frame + 22, 6);
}

/* Records a Neighbour Discovery frame from another host that claims a probed IPv6 address. */
static void inspect_frame6(probe_job* job, const uint8_t* frame, size_t length,
                           const struct sockaddr_ll* from, const uint8_t own_mac[6]) {
  struct in6_addr target;
  uint8_t claimed_by[6];
  int index;
  if (from->sll_pkttype == PACKET_OUTGOING) return;
  if (!ndp_read_claim(frame, length, own_mac, &target, claimed_by)) return;
  index = find_address6(job, &target);
  if (index < 0 || job->occupied[index]) return;
  job->occupied[index] = 1;
  memcpy(job->macs[index], claimed_by, 6);
}

static void probe_execute(napi_env env, void* data) {
  probe_job* job = data;
  struct sockaddr_ll destination, destination6;
  uint8_t mac[6];
  int64_t start, deadline, resend_at;
  bool resent = false;
  int fd = -1, fd6 = -1, buffer_bytes = 4 * 1024 * 1024;
  uint32_t i, ipv6_count = 0;
  (void)env;

  for (i = 0; i < job->count; i++) ipv6_count += job->addresses[i].family == AF_INET6;
  if (interface_mac(job->ifname, mac, &job->error) != 0) {
    job->failed = true;
    return;
  }
  /* ARP socket as before whenever there is an IPv4 address (or none at all); a second socket
   * for IPv6, both polled. */
  if (ipv6_count < job->count || job->count == 0) {
    fd = open_arp_socket(job->ifname, &destination, &job->error);
    if (fd < 0) goto failed;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof buffer_bytes);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  if (ipv6_count > 0) {
    fd6 = open_ndp_socket(job, &destination6);
    if (fd6 < 0) goto failed;
    setsockopt(fd6, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof buffer_bytes);
    fcntl(fd6, F_SETFL, fcntl(fd6, F_GETFL) | O_NONBLOCK);
  }
  if (send_probes(job, fd, &destination, fd6, &destination6, mac) != 0) goto failed;
  /* The window opens once every probe is out: a slow send (a thousand VIPs, a starved
   * thread) does not eat into the time the last address has to answer. */
  start = monotonic_ms();
  deadline = start + job->timeout_ms;
  /* A second round halfway through covers one lost probe or reply. */
  resend_at = start + job->timeout_ms / 2;
  for (;;) {
    /* The clock is read BEFORE the queue is drained, and the probe ends only on a drain that
     * began at or after the deadline: a thread that was off the CPU past the deadline (a
     * loaded machine; the thread pool runs at normal priority) still reads every answer that
     * arrived in time, instead of reporting an address free whose owner did answer. */
    int64_t now = monotonic_ms();
    int64_t wait_until;
    struct pollfd waiters[2];
    nfds_t waiter_count = 0;
    uint32_t free_count = 0;
    while (fd >= 0) {
      uint8_t frame[128];
      struct sockaddr_ll from;
      socklen_t from_length = sizeof from;
      ssize_t length = recvfrom(fd, frame, sizeof frame, MSG_TRUNC, (struct sockaddr*)&from,
                                &from_length);
      if (length < 0) break; /* EAGAIN: drained */
      inspect_frame(job, frame, length, &from, mac);
    }
    while (fd6 >= 0) {
      uint8_t frame[1536];
      struct sockaddr_ll from;
      socklen_t from_length = sizeof from;
      ssize_t length = recvfrom(fd6, frame, sizeof frame, MSG_TRUNC, (struct sockaddr*)&from,
                                &from_length);
      if (length < 0) break;
      /* MSG_TRUNC returns the frame's real length: read only what was copied. */
      inspect_frame6(job, frame, (size_t)length < sizeof frame ? (size_t)length : sizeof frame,
                     &from, mac);
    }
    for (i = 0; i < job->count; i++) free_count += job->occupied[i] ? 0 : 1;
    if (free_count == 0 || now >= deadline) break;
    if (!resent && now >= resend_at) {
      resent = true;
      if (send_probes(job, fd, &destination, fd6, &destination6, mac) != 0) goto failed;
    }
    wait_until = resent ? deadline : resend_at;
    if (fd >= 0) waiters[waiter_count++] = (struct pollfd){fd, POLLIN, 0};
    if (fd6 >= 0) waiters[waiter_count++] = (struct pollfd){fd6, POLLIN, 0};
    poll(waiters, waiter_count, (int)(wait_until - now));
  }
  if (fd >= 0) close(fd);
  if (fd6 >= 0) close(fd6); /* also leaves the multicast groups */
  return;

failed:
  if (fd >= 0) close(fd);
  if (fd6 >= 0) close(fd6);
  job->failed = true;
}

static napi_value make_probe_result(napi_env env, probe_job* job, uint32_t i, bool with_ip) {
  napi_value object, value;
  napi_create_object(env, &object);
  if (with_ip) {
    /* As given: an IPv6 address has many spellings, and callers match results by text. */
    napi_create_string_utf8(env, job->addresses[i].text, NAPI_AUTO_LENGTH, &value);
    napi_set_named_property(env, object, "ip", value);
  }
  napi_get_boolean(env, job->occupied[i] != 0, &value);
  napi_set_named_property(env, object, "occupied", value);
  if (job->occupied[i]) {
    char mac_text[18];
    format_mac(job->macs[i], mac_text);
    napi_create_string_utf8(env, mac_text, NAPI_AUTO_LENGTH, &value);
    napi_set_named_property(env, object, "mac", value);
  }
  return object;
}

static void probe_complete(napi_env env, napi_status status, void* data) {
  probe_job* job = data;
  napi_value result;
  if (status != napi_ok) {
    job->failed = true;
    set_error(&job->error, "ERR_ARP_INTERNAL", "floatip_arp: probe was cancelled");
  }
  if (job->failed) {
    napi_value code, message, error;
    napi_create_string_utf8(env, job->error.code, NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, job->error.message, NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, code, message, &error);
    napi_reject_deferred(env, job->deferred, error);
  } else if (job->single) {
    napi_resolve_deferred(env, job->deferred, make_probe_result(env, job, 0, false));
  } else {
    uint32_t i;
    napi_create_array_with_length(env, job->count, &result);
    for (i = 0; i < job->count; i++)
      napi_set_element(env, result, i, make_probe_result(env, job, i, true));
    napi_resolve_deferred(env, job->deferred, result);
  }
  napi_delete_async_work(env, job->work);
  free(job->addresses);
  free(job->occupied);
  free(job->macs);
  free(job);
}

static napi_value js_probe(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], promise, name;
  probe_job* job;
  double timeout_ms;
  napi_valuetype type;

  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return throw_invalid(env, "floatip_arp: probe(ifname, ip | ipList, timeoutMs)");
  job = calloc(1, sizeof *job);
  if (job == NULL) {
    napi_throw_error(env, "ERR_ARP_INTERNAL", "floatip_arp: out of memory");
    return NULL;
  }
  if (read_string(env, argv[0], job->ifname, sizeof job->ifname) != 0) {
    free(job);
    return throw_invalid(env, "floatip_arp: probe needs an interface name (at most 15 bytes)");
  }
  if (napi_get_value_double(env, argv[2], &timeout_ms) != napi_ok || !(timeout_ms >= 1) ||
      timeout_ms > MAX_PROBE_TIMEOUT_MS) {
    free(job);
    return throw_invalid(env, "floatip_arp: probe timeoutMs must be a number from 1 to 60000");
  }
  job->timeout_ms = (int)timeout_ms;
  napi_typeof(env, argv[1], &type);
  if (type == napi_string) {
    char text[64];
    vip_address parsed;
    const char* problem = "not an IPv4 or IPv6 address string";
    if (read_string(env, argv[1], text, sizeof text) != 0 ||
        (problem = parse_vip(text, &parsed)) != NULL) {
      char message[160];
      snprintf(message, sizeof message, "floatip_arp: probe address is %s", problem);
      free(job);
      return throw_invalid(env, message);
    }
    job->single = true;
    job->count = 1;
    job->addresses = malloc(sizeof(vip_address));
    if (job->addresses != NULL) job->addresses[0] = parsed;
  } else {
    job->addresses = read_address_list(env, argv[1], &job->count);
    if (job->addresses == NULL) {
      free(job);
      return NULL;
    }
  }
  job->occupied = calloc(job->count > 0 ? job->count : 1, 1);
  job->macs = calloc(job->count > 0 ? job->count : 1, 6);
  if (job->addresses == NULL || job->occupied == NULL || job->macs == NULL) {
    free(job->addresses);
    free(job->occupied);
    free(job->macs);
    free(job);
    napi_throw_error(env, "ERR_ARP_INTERNAL", "floatip_arp: out of memory");
    return NULL;
  }
  NAPI_CALL(env, napi_create_promise(env, &job->deferred, &promise));
  NAPI_CALL(env, napi_create_string_utf8(env, "floatip_arp.probe", NAPI_AUTO_LENGTH, &name));
  NAPI_CALL(env, napi_create_async_work(env, NULL, name, probe_execute, probe_complete, job,
                                        &job->work));
  NAPI_CALL(env, napi_queue_async_work(env, job->work));
  return promise;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"interfaceMac", NULL, js_interface_mac, NULL, NULL, NULL, napi_enumerable, NULL},
      {"announce", NULL, js_announce, NULL, NULL, NULL, napi_enumerable, NULL},
      {"probe", NULL, js_probe, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof properties / sizeof properties[0],
                                        properties));
  /* Realtime scheduling, memory locking and rtnetlink addresses: see floatip_sys.c. */
  NAPI_CALL(env, floatip_sys_init(env, exports));
  /* TCP tickle ACKs after a takeover: see floatip_tickle.c. */
  NAPI_CALL(env, floatip_tickle_init(env, exports));
  /* The heartbeat socket read on the control loop's tick: see floatip_udp.c. */
  NAPI_CALL(env, floatip_udp_init(env, exports));
  /* The control loop's wake-up timer: see floatip_timer.c. */
  NAPI_CALL(env, floatip_timer_init(env, exports));
  /* The heartbeat codec's MAC with the key schedule done once: see floatip_hmac.c. */
  NAPI_CALL(env, floatip_hmac_init(env, exports));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
