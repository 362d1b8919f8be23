/*
 * floatip_udp: the heartbeat socket of `receive: on-tick` (src/cluster/tick-socket.ts), and
 * the send path of both receive modes (`udpSend` with its last-moment clock check, also on the
 * descriptor of Node's socket with `as-they-come`).
 *
 * An agent that reads its UDP socket through libuv is woken by every datagram a peer sends;
 * on a paravirtualised machine each such wake-up of a sleeping process costs more than
 * everything the process then does with the datagram (bench:idle, c-floor against
 * c-floor-tick). This socket is non-blocking and registered with nothing: datagrams queue in
 * the kernel's receive buffer until the control loop drains them on its own timer.
 *
 *   udpOpen(address, port, recvBufferBytes) -> { fd, port }     throws { code, syscall }
 *   udpSend(fd, buffer, address, port[, notAfterMs])
 *                                           -> undefined | "LATE" | "EAGAIN" | other errno code
 *   udpMonotonicMs()                        -> CLOCK_MONOTONIC in milliseconds
 *   udpDrain(fd, max)                       -> [[Buffer, address, port], ...] (at most max)
 *   udpRecvBufferBytes(fd)                  -> number (the kernel's effective size)
 *   udpClose(fd)                            -> undefined
 *
 * Everything is synchronous and non-blocking: no call here can wait.
 */
#define _GNU_SOURCE
#include "floatip_udp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define UDP_MAX_DATAGRAM 65536

static napi_value udp_throw(napi_env env, int err, const char* syscall) {
  char message[160];
  snprintf(message, sizeof message, "floatip_udp: %s failed: %s", syscall, strerror(err));
  napi_value text, code, exception, name;
  const char* code_text = strerrorname_np(err);
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &text) != napi_ok ||
      napi_create_string_utf8(env, code_text ? code_text : "EUNKNOWN", NAPI_AUTO_LENGTH, &code) !=
          napi_ok ||
      napi_create_error(env, code, text, &exception) != napi_ok) {
    napi_throw_error(env, "ERR_NAPI", message);
    return NULL;
  }
  napi_set_named_property(env, exception, "code", code);
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &name) == napi_ok)
    napi_set_named_property(env, exception, "syscall", name);
  napi_throw(env, exception);
  return NULL;
}

static napi_value udp_bad_arg(napi_env env, const char* message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG", message);
  return NULL;
}

/*
 * An IPv4 or IPv6 literal and a port into `storage`; the length, or 0 when not a literal. An
 * IPv6 literal may carry a zone (`fe80::11%eth0`, or a numeric interface index), as Node's
 * dgram takes it: the zone becomes the scope id.
 */
static socklen_t udp_endpoint(const char* address, int32_t port, struct sockaddr_storage* storage) {
  memset(storage, 0, sizeof *storage);
  struct sockaddr_in* v4 = (struct sockaddr_in*)storage;
  struct sockaddr_in6* v6 = (struct sockaddr_in6*)storage;
  if (inet_pton(AF_INET, address, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    return sizeof *v4;
  }
  char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  if (strlen(address) >= sizeof host) return 0;
  strcpy(host, address);
  char* zone = strchr(host, '%');
  unsigned int scope = 0;
  if (zone != NULL) {
    *zone++ = '\0';
    char* end = NULL;
    unsigned long index = strtoul(zone, &end, 10);
    scope = (*zone != '\0' && *end == '\0') ? (unsigned int)index : if_nametoindex(zone);
    if (scope == 0) return 0;
  }
  if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    v6->sin6_scope_id = scope;
    return sizeof *v6;
  }
  return 0;
}

static int udp_arg_string(napi_env env, napi_value value, char* buffer, size_t size) {
  napi_valuetype type;
  size_t length = 0;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_string) return -1;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) return -1;
  if (length == 0 || length + 1 > size) return -1;
  return napi_get_value_string_utf8(env, value, buffer, size, &length) == napi_ok ? 0 : -1;
}

static int udp_arg_int(napi_env env, napi_value value, int32_t* out) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number) return -1;
  return napi_get_value_int32(env, value, out) == napi_ok ? 0 : -1;
}

static napi_value js_udp_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value args[3];
  char address[INET6_ADDRSTRLEN + 1];
  int32_t port = -1, buffer_bytes = 0;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc < 3 ||
      udp_arg_string(env, args[0], address, sizeof address) != 0 ||
      udp_arg_int(env, args[1], &port) != 0 || port < 0 || port > 65535 ||
      udp_arg_int(env, args[2], &buffer_bytes) != 0 || buffer_bytes < 0)
    return udp_bad_arg(env, "udpOpen(address, port, recvBufferBytes)");
  struct sockaddr_storage storage;
  socklen_t length = udp_endpoint(address, port, &storage);
  if (length == 0)
    return udp_bad_arg(env, "udpOpen: address is not an IPv4 or IPv6 literal (with a known zone)");
  int family = storage.ss_family;
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return udp_throw(env, errno, "socket");
  int one = 1;
  const char* step = NULL;
  if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0)
    step = "IPV6_V6ONLY";
  else if (bind(fd, (struct sockaddr*)&storage, length) != 0)
    step = "bind";
  if (step != NULL) {
    int err = errno;
    close(fd);
    return udp_throw(env, err, step);
  }
  /* A larger receive buffer is a wish: refused (rmem_max), the kernel's default stays. */
  if (buffer_bytes > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof buffer_bytes);
  struct sockaddr_storage bound;
  socklen_t bound_length = sizeof bound;
  int bound_port = port;
  if (getsockname(fd, (struct sockaddr*)&bound, &bound_length) == 0)
    bound_port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6*)&bound)->sin6_port
                                                  : ((struct sockaddr_in*)&bound)->sin_port);
  napi_value result, fd_value, port_value;
  if (napi_create_object(env, &result) != napi_ok ||
      napi_create_int32(env, fd, &fd_value) != napi_ok ||
      napi_create_int32(env, bound_port, &port_value) != napi_ok ||
      napi_set_named_property(env, result, "fd", fd_value) != napi_ok ||
      napi_set_named_property(env, result, "port", port_value) != napi_ok) {
    close(fd);
    napi_throw_error(env, "ERR_NAPI", "floatip_udp: udpOpen result");
    return NULL;
  }
  return result;
}

static double udp_monotonic_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)now.tv_sec * 1e3 + (double)now.tv_nsec / 1e6;
}

static napi_value js_udp_monotonic_ms(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  napi_create_double(env, udp_monotonic_ms(), &result);
  return result;
}

/*
 * `notAfterMs` (CLOCK_MONOTONIC, as udpMonotonicMs): the datagram goes only if the clock has
 * not passed it, read right before sendto. The control loop's send gate decides a datagram may
 * go and allows it the stall threshold to reach the kernel: a process stopped in between (a
 * SIGSTOP, a frozen VM) finds the clock past it on waking and sends nothing ("LATE"), where a
 * check in JavaScript would leave the encoding and Node's send path unguarded.
 */
static napi_value js_udp_send(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value args[5];
  char address[INET6_ADDRSTRLEN + 1];
  int32_t fd = -1, port = -1;
  void* data = NULL;
  size_t size = 0;
  bool is_buffer = false;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc < 4 ||
      udp_arg_int(env, args[0], &fd) != 0 || fd < 0 ||
      napi_is_buffer(env, args[1], &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, args[1], &data, &size) != napi_ok ||
      udp_arg_string(env, args[2], address, sizeof address) != 0 ||
      udp_arg_int(env, args[3], &port) != 0 || port < 1 || port > 65535)
    return udp_bad_arg(env, "udpSend(fd, buffer, address, port)");
  double not_after = -1;
  napi_valuetype type = napi_undefined;
  if (argc >= 5 && napi_typeof(env, args[4], &type) == napi_ok && type != napi_undefined &&
      (type != napi_number || napi_get_value_double(env, args[4], &not_after) != napi_ok))
    return udp_bad_arg(env, "udpSend: notAfterMs is a number of milliseconds");
  struct sockaddr_storage storage;
  socklen_t length = udp_endpoint(address, port, &storage);
  if (length == 0)
    return udp_bad_arg(env, "udpSend: address is not an IPv4 or IPv6 literal (with a known zone)");
  napi_value result;
  if (type == napi_number && udp_monotonic_ms() > not_after) {
    napi_create_string_utf8(env, "LATE", NAPI_AUTO_LENGTH, &result);
    return result;
  }
  ssize_t sent;
  do {
    sent = sendto(fd, data, size, 0, (struct sockaddr*)&storage, length);
  } while (sent < 0 && errno == EINTR);
  if (sent >= 0) {
    napi_get_undefined(env, &result);
    return result;
  }
  const char* code = strerrorname_np(errno);
  napi_create_string_utf8(env, code ? code : "EUNKNOWN", NAPI_AUTO_LENGTH, &result);
  return result;
}

static napi_value js_udp_drain(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  int32_t fd = -1, max = 0;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc < 2 ||
      udp_arg_int(env, args[0], &fd) != 0 || fd < 0 || udp_arg_int(env, args[1], &max) != 0 ||
      max < 1)
    return udp_bad_arg(env, "udpDrain(fd, max)");
  napi_value list;
  if (napi_create_array(env, &list) != napi_ok) return udp_bad_arg(env, "udpDrain: array");
  static unsigned char buffer[UDP_MAX_DATAGRAM];
  uint32_t count = 0;
  while (count < (uint32_t)max) {
    struct sockaddr_storage from;
    socklen_t from_length = sizeof from;
    ssize_t got = recvfrom(fd, buffer, sizeof buffer, MSG_DONTWAIT | MSG_TRUNC,
                           (struct sockaddr*)&from, &from_length);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      /* An ICMP error queued for an earlier send: it concerns that send, not this read. */
      if (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH) continue;
      return udp_throw(env, errno, "recvfrom");
    }
    /* Larger than any datagram floatip sends: dropped here, counted by nobody but the kernel. */
    if ((size_t)got > sizeof buffer) continue;
    char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
    int port;
    if (from.ss_family == AF_INET6) {
      struct sockaddr_in6* v6 = (struct sockaddr_in6*)&from;
      inet_ntop(AF_INET6, &v6->sin6_addr, text, INET6_ADDRSTRLEN);
      /* A link-local source with its zone, as Node's dgram reports it (fe80::12%eth0). */
      if (v6->sin6_scope_id != 0) {
        char name[IF_NAMESIZE];
        size_t used = strlen(text);
        if (if_indextoname(v6->sin6_scope_id, name) != NULL)
          snprintf(text + used, sizeof text - used, "%%%s", name);
        else
          snprintf(text + used, sizeof text - used, "%%%u", v6->sin6_scope_id);
      }
      port = ntohs(v6->sin6_port);
    } else {
      struct sockaddr_in* v4 = (struct sockaddr_in*)&from;
      inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
      port = ntohs(v4->sin_port);
    }
    napi_value entry, data, address, port_value;
    void* copy = NULL;
    if (napi_create_array_with_length(env, 3, &entry) != napi_ok ||
        napi_create_buffer_copy(env, (size_t)got, buffer, &copy, &data) != napi_ok ||
        napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &address) != napi_ok ||
        napi_create_int32(env, port, &port_value) != napi_ok ||
        napi_set_element(env, entry, 0, data) != napi_ok ||
        napi_set_element(env, entry, 1, address) != napi_ok ||
        napi_set_element(env, entry, 2, port_value) != napi_ok ||
        napi_set_element(env, list, count, entry) != napi_ok) {
      napi_throw_error(env, "ERR_NAPI", "floatip_udp: udpDrain result");
      return NULL;
    }
    count++;
  }
  return list;
}

/* The single fd argument of udpRecvBufferBytes and udpClose; -1 when missing or not one. */
static int32_t udp_only_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value args[1];
  int32_t fd = -1;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc < 1 ||
      udp_arg_int(env, args[0], &fd) != 0)
    return -1;
  return fd < 0 ? -1 : fd;
}

static napi_value js_udp_recv_buffer_bytes(napi_env env, napi_callback_info info) {
  int32_t fd = udp_only_fd(env, info);
  if (fd < 0) return udp_bad_arg(env, "udpRecvBufferBytes(fd)");
  int value = 0;
  socklen_t length = sizeof value;
  if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &value, &length) != 0)
    return udp_throw(env, errno, "getsockopt");
  napi_value result;
  napi_create_int32(env, value, &result);
  return result;
}

static napi_value js_udp_close(napi_env env, napi_callback_info info) {
  int32_t fd = udp_only_fd(env, info);
  if (fd < 0) return udp_bad_arg(env, "udpClose(fd)");
  close(fd);
  napi_value result;
  napi_get_undefined(env, &result);
  return result;
}

napi_status floatip_udp_init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"udpOpen", NULL, js_udp_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpSend", NULL, js_udp_send, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpMonotonicMs", NULL, js_udp_monotonic_ms, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpDrain", NULL, js_udp_drain, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpRecvBufferBytes", NULL, js_udp_recv_buffer_bytes, NULL, NULL, NULL, napi_enumerable,
       NULL},
      {"udpClose", NULL, js_udp_close, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof properties / sizeof properties[0],
                                properties);
}
