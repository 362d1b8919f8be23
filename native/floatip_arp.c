/*
 * floatip_arp: gratuitous ARP announcements and ARP occupancy probes on an AF_PACKET socket.
 *
 * Why native: iputils `arping -U` spends about a second per call and `arping -i 0` can hang,
 * while a failover must announce up to 1,000 VIPs in well under a second. One raw socket per
 * call sends every frame back to back.
 *
 * Exports (all synchronous except probe):
 *   interfaceMac(ifname) -> "aa:bb:cc:dd:ee:ff"
 *   announce(ifname, ipv4List, macOrEmpty, forms) -> number of frames sent
 *       forms: "both" (default, also when undefined), "request" or "reply".
 *   probe(ifname, ipv4 | ipv4List, timeoutMs) -> Promise
 *       ipv4 string:  resolves { occupied, mac? }
 *       ipv4 list:    resolves [{ ip, occupied, mac? }, ...] in the order given
 *   The probe runs on the libuv thread pool (napi async work) so the event loop keeps running.
 *
 * Errors are thrown (or rejected) as Error objects whose `code` is one of
 * ERR_ARP_INVALID_ARGUMENT, ERR_ARP_NO_INTERFACE, ERR_ARP_NOT_ETHERNET, ERR_ARP_PERMISSION,
 * ERR_ARP_SOCKET, ERR_ARP_SEND.
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

#include "floatip_sys.h"
#include "floatip_tickle.h"

#define FRAME_BYTES 42 /* 14 Ethernet + 28 ARP; the NIC pads to the 60-byte minimum. */
#define MAX_ADDRESSES 65536
#define MAX_PROBE_TIMEOUT_MS 60000

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
static int send_frame(int fd, const uint8_t* frame, const struct sockaddr_ll* destination,
                      const char* ifname, arp_error* error) {
  int attempt;
  for (attempt = 0; attempt < 200; attempt++) {
    ssize_t sent = sendto(fd, frame, FRAME_BYTES, 0, (const struct sockaddr*)destination,
                          sizeof *destination);
    if (sent == FRAME_BYTES) return 0;
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

/* Reads an array of IPv4 strings; returns a malloc'd array (network order) or NULL after throwing. */
static uint32_t* read_ipv4_list(napi_env env, napi_value list, uint32_t* count) {
  bool is_array = false;
  uint32_t i;
  uint32_t* addresses;
  if (napi_is_array(env, list, &is_array) != napi_ok || !is_array) {
    throw_invalid(env, "floatip_arp: expected an array of IPv4 address strings");
    return NULL;
  }
  napi_get_array_length(env, list, count);
  if (*count > MAX_ADDRESSES) {
    throw_invalid(env, "floatip_arp: too many addresses in one call (limit 65536)");
    return NULL;
  }
  addresses = malloc(sizeof(uint32_t) * (*count > 0 ? *count : 1));
  if (addresses == NULL) {
    napi_throw_error(env, "ERR_ARP_INTERNAL", "floatip_arp: out of memory");
    return NULL;
  }
  for (i = 0; i < *count; i++) {
    napi_value element;
    char text[64];
    struct in_addr parsed;
    napi_get_element(env, list, i, &element);
    if (read_string(env, element, text, sizeof text) != 0 ||
        inet_pton(AF_INET, text, &parsed) != 1) {
      char message[128];
      snprintf(message, sizeof message, "floatip_arp: element %u is not an IPv4 address string",
               i);
      free(addresses);
      throw_invalid(env, message);
      return NULL;
    }
    addresses[i] = parsed.s_addr;
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
  uint32_t* addresses;
  bool send_request, send_reply;
  struct sockaddr_ll destination;
  arp_error error;
  int fd;
  double sent = 0;
  napi_value result;
  napi_valuetype type;

  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || read_string(env, argv[0], ifname, sizeof ifname) != 0)
    return throw_invalid(env, "floatip_arp: announce(ifname, ipv4List, mac?, forms?)");
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
  addresses = read_ipv4_list(env, argv[1], &count);
  if (addresses == NULL) return NULL;

  fd = open_arp_socket(ifname, &destination, &error);
  if (fd < 0) {
    free(addresses);
    return throw_arp_error(env, &error);
  }
  for (i = 0; i < count; i++) {
    uint8_t frame[FRAME_BYTES];
    /* Request form (RFC 5227 announcement): sender = target = VIP; target MAC ignored. */
    if (send_request) {
      build_frame(frame, ARPOP_REQUEST, mac, addresses[i], zero_mac, addresses[i]);
      if (send_frame(fd, frame, &destination, ifname, &error) != 0) goto failed;
      sent++;
    }
    /* Reply form: Linux only treats a reply as gratuitous when target MAC = sender MAC. */
    if (send_reply) {
      build_frame(frame, ARPOP_REPLY, mac, addresses[i], mac, addresses[i]);
      if (send_frame(fd, frame, &destination, ifname, &error) != 0) goto failed;
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
  uint32_t* addresses;   /* network order */
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
    if (job->addresses[i] == address) return (int)i;
  return -1;
}

static int send_probes(probe_job* job, int fd, const struct sockaddr_ll* destination,
                       const uint8_t mac[6]) {
  uint8_t zero_mac[6] = {0};
  uint32_t i;
  for (i = 0; i < job->count; i++) {
    uint8_t frame[FRAME_BYTES];
    if (job->occupied[i]) continue;
    /* RFC 5227 probe: sender IP 0.0.0.0 so no neighbour learns a mapping from it. */
    build_frame(frame, ARPOP_REQUEST, mac, 0, zero_mac, job->addresses[i]);
    if (send_frame(fd, frame, destination, job->ifname, &job->error) != 0) return -1;
  }
  return 0;
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

static void probe_execute(napi_env env, void* data) {
  probe_job* job = data;
  struct sockaddr_ll destination;
  uint8_t mac[6];
  int64_t start, deadline, resend_at;
  bool resent = false;
  int fd, buffer_bytes = 4 * 1024 * 1024;
  (void)env;

  if (interface_mac(job->ifname, mac, &job->error) != 0) {
    job->failed = true;
    return;
  }
  fd = open_arp_socket(job->ifname, &destination, &job->error);
  if (fd < 0) {
    job->failed = true;
    return;
  }
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof buffer_bytes);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  if (send_probes(job, fd, &destination, mac) != 0) {
    close(fd);
    job->failed = true;
    return;
  }
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
    struct pollfd waiter = {fd, POLLIN, 0};
    uint32_t i, free_count = 0;
    for (;;) {
      uint8_t frame[128];
      struct sockaddr_ll from;
      socklen_t from_length = sizeof from;
      ssize_t length = recvfrom(fd, frame, sizeof frame, MSG_TRUNC, (struct sockaddr*)&from,
                                &from_length);
      if (length < 0) break; /* EAGAIN: drained */
      inspect_frame(job, frame, length, &from, mac);
    }
    for (i = 0; i < job->count; i++) free_count += job->occupied[i] ? 0 : 1;
    if (free_count == 0 || now >= deadline) break;
    if (!resent && now >= resend_at) {
      resent = true;
      if (send_probes(job, fd, &destination, mac) != 0) {
        close(fd);
        job->failed = true;
        return;
      }
    }
    wait_until = resent ? deadline : resend_at;
    poll(&waiter, 1, (int)(wait_until - now));
  }
  close(fd);
}

static napi_value make_probe_result(napi_env env, probe_job* job, uint32_t i, bool with_ip) {
  napi_value object, value;
  char text[INET_ADDRSTRLEN];
  napi_create_object(env, &object);
  if (with_ip) {
    inet_ntop(AF_INET, &job->addresses[i], text, sizeof text);
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &value);
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
  if (argc < 3) return throw_invalid(env, "floatip_arp: probe(ifname, ipv4 | ipv4List, timeoutMs)");
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
    struct in_addr parsed;
    if (read_string(env, argv[1], text, sizeof text) != 0 || inet_pton(AF_INET, text, &parsed) != 1) {
      free(job);
      return throw_invalid(env, "floatip_arp: probe address is not an IPv4 address string");
    }
    job->single = true;
    job->count = 1;
    job->addresses = malloc(sizeof(uint32_t));
    if (job->addresses != NULL) job->addresses[0] = parsed.s_addr;
  } else {
    job->addresses = read_ipv4_list(env, argv[1], &job->count);
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
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
