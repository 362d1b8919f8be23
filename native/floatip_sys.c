/*
 * floatip_sys: system calls the agent makes on its steady-state path without spawning a
 * process. Every export is synchronous and returns within its deadline.
 *
 * Realtime (keepalived / Corosync style):
 *   setRealtime(policy, priority)      policy "rr" | "fifo"; sched_setscheduler(0, policy |
 *       SCHED_RESET_ON_FORK). pid 0 is the calling THREAD on Linux: only the thread that calls
 *       it (the JS thread) becomes realtime, and threads it creates later start as SCHED_OTHER.
 *   setRealtimeCpuLimit(softUs, hardUs) setrlimit(RLIMIT_RTTIME); Infinity = RLIM_INFINITY.
 *       A realtime thread that runs softUs without blocking gets SIGXCPU, at hardUs SIGKILL.
 *   lockMemory() -> { onFault }        mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT); without
 *       MCL_ONFAULT only when the kernel rejects it with EINVAL (Linux < 4.4).
 *       NOT FOR THE AGENT: V8 madvises heap pages away and aborts when the kernel refuses
 *       that on locked pages (at a Worker's start, in GC, at a natural exit). Use:
 *   lockMappedFiles() -> { regions, bytes, failed }  mlock() every readable file-backed
 *       mapping listed in /proc/self/maps (node binary, shared libraries, this addon), never
 *       anonymous memory, each with mlock2(MLOCK_ONFAULT): pages are locked as they are
 *       touched, none is read in now (plain mlock when the kernel lacks mlock2). EPERM is thrown; a mapping that fails otherwise
 *       (ENOMEM: RLIMIT_MEMLOCK, unmapped meanwhile) counts in `failed`, and the first error
 *       is thrown only when every mapping failed.
 *   currentScheduling() -> { policy, priority, resetOnFork, tid } of the calling thread.
 *   execProgram(path, argv) -> never   execv() with the current environment (throws on error).
 *   lockExclusive(path, inherit) -> fd  flock(LOCK_EX | LOCK_NB) on `path` (created), PID
 *       written into it; EWOULDBLOCK when held elsewhere; `inherit` keeps it across execve.
 *
 * rtnetlink addresses (NETLINK_ROUTE socket, one per call, SO_RCVTIMEO = timeoutMs):
 *   listAddresses(ifname, timeoutMs?) -> [{ ip, prefixLength, family: 4 | 6,
 *       validLftSec, preferredLftSec, tentative, dadFailed }] (lifetimes: seconds or
 *       "forever"; the two flags: IPv6 DAD under way / failed); RTM_GETADDR dump.
 *   renewAddressLifetimes(ifname, ips, prefixLengths, validLftSec, timeoutMs?) -> per address
 *       null or { code, message }: RTM_NEWADDR with NLM_F_REPLACE (no NLM_F_CREATE) and
 *       IFA_CACHEINFO valid = preferred = validLftSec, like `ip address change` (IPv6: with
 *       nodad, as floatip adds it), for each address over one socket. The kernel still creates
 *       an address that is missing (both families ignore the absent NLM_F_CREATE): list first.
 *
 * Errors are thrown as Error objects whose `code` is the errno name ("EPERM", "EINVAL",
 * "ENOMEM", "ENODEV", "ETIMEDOUT", ...), with `errno` (the number) and `syscall` (what failed)
 * as extra properties; invalid arguments throw a TypeError with code "ERR_INVALID_ARG".
 * The JS wrappers (src/adapters/linux/realtime.ts, netlink.ts) turn these into stable codes.
 */
#define _GNU_SOURCE
#include "floatip_sys.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <math.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#ifndef SCHED_RESET_ON_FORK
#define SCHED_RESET_ON_FORK 0x40000000
#endif
#ifndef SCHED_DEADLINE
#define SCHED_DEADLINE 6
#endif
#ifndef SCHED_EXT
#define SCHED_EXT 7
#endif
#ifndef MCL_ONFAULT
#define MCL_ONFAULT 4
#endif
#ifndef RLIMIT_RTTIME
#define RLIMIT_RTTIME 15
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif
#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif
#ifndef NLM_F_ACK_TLVS
#define NLM_F_ACK_TLVS 0x200
#endif
#ifndef NLM_F_CAPPED
#define NLM_F_CAPPED 0x100
#endif
#ifndef NLMSGERR_ATTR_MSG
#define NLMSGERR_ATTR_MSG 1
#endif
#ifndef INFINITY_LIFE_TIME
#define INFINITY_LIFE_TIME 0xFFFFFFFFu
#endif

#define DEFAULT_TIMEOUT_MS 1000
#define MAX_TIMEOUT_MS 60000
#define RECV_BUFFER_BYTES 65536
#define DUMP_ATTEMPTS 3

/* ---------- errors ---------- */

typedef struct {
  int err;             /* errno value; 0 = no error */
  char syscall[48];    /* what failed, e.g. "sched_setscheduler" */
  char message[384];
} sys_error;

static void set_sys_error(sys_error* error, int err, const char* syscall, const char* format, ...)
    __attribute__((format(printf, 4, 5)));

static void set_sys_error(sys_error* error, int err, const char* syscall, const char* format,
                          ...) {
  va_list args;
  error->err = err;
  snprintf(error->syscall, sizeof error->syscall, "%s", syscall);
  va_start(args, format);
  vsnprintf(error->message, sizeof error->message, format, args);
  va_end(args);
}

static const char* errno_name(int err) {
  switch (err) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINTR: return "EINTR";
    case ENXIO: return "ENXIO";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case ENODEV: return "ENODEV";
    case EINVAL: return "EINVAL";
    case ENOSPC: return "ENOSPC";
    case EFBIG: return "EFBIG";
    case ERANGE: return "ERANGE";
    case EPROTO: return "EPROTO";
    case EMSGSIZE: return "EMSGSIZE";
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case ENETDOWN: return "ENETDOWN";
    case ENOBUFS: return "ENOBUFS";
    case ETIMEDOUT: return "ETIMEDOUT";
    default: return NULL;
  }
}

static napi_value throw_sys_error(napi_env env, const sys_error* error) {
  napi_value code, message, value, exception;
  char code_text[24];
  const char* name = errno_name(error->err);
  if (name == NULL) {
    snprintf(code_text, sizeof code_text, "ERRNO_%d", error->err);
    name = code_text;
  }
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code) != napi_ok ||
      napi_create_string_utf8(env, error->message, NAPI_AUTO_LENGTH, &message) != napi_ok ||
      napi_create_error(env, code, message, &exception) != napi_ok) {
    napi_throw_error(env, name, error->message);
    return NULL;
  }
  if (napi_create_int32(env, error->err, &value) == napi_ok)
    napi_set_named_property(env, exception, "errno", value);
  if (napi_create_string_utf8(env, error->syscall, NAPI_AUTO_LENGTH, &value) == napi_ok)
    napi_set_named_property(env, exception, "syscall", value);
  napi_throw(env, exception);
  return NULL;
}

static napi_value throw_errno(napi_env env, int err, const char* syscall, const char* detail) {
  sys_error error;
  set_sys_error(&error, err, syscall, "floatip_sys: %s%s%s failed: %s", syscall,
                detail[0] ? " " : "", detail, strerror(err));
  return throw_sys_error(env, &error);
}

static napi_value throw_invalid_arg(napi_env env, const char* message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG", message);
  return NULL;
}

#define SYS_NAPI_CALL(env, call)                                          \
  do {                                                                    \
    if ((call) != napi_ok) {                                              \
      napi_throw_error((env), "ERR_NAPI", "floatip_sys: " #call " failed"); \
      return NULL;                                                        \
    }                                                                     \
  } while (0)

/* ---------- argument helpers ---------- */

static int arg_string(napi_env env, napi_value value, char* buffer, size_t size) {
  napi_valuetype type;
  size_t length = 0;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_string) return -1;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) return -1;
  if (length == 0 || length + 1 > size) return -1;
  if (napi_get_value_string_utf8(env, value, buffer, size, &length) != napi_ok) return -1;
  return 0;
}

/* Reads a number; returns 0 and sets *out, or -1 when it is not a number. */
static int arg_number(napi_env env, napi_value value, double* out) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number) return -1;
  return napi_get_value_double(env, value, out) == napi_ok ? 0 : -1;
}

/* Optional timeout argument: undefined -> default; otherwise a whole number 1..60000. */
static int arg_timeout(napi_env env, size_t argc, napi_value* argv, size_t index, int* out) {
  napi_valuetype type;
  double value;
  *out = DEFAULT_TIMEOUT_MS;
  if (argc <= index) return 0;
  if (napi_typeof(env, argv[index], &type) != napi_ok) return -1;
  if (type == napi_undefined) return 0;
  if (arg_number(env, argv[index], &value) != 0 || value != floor(value) || value < 1 ||
      value > MAX_TIMEOUT_MS)
    return -1;
  *out = (int)value;
  return 0;
}

static napi_value set_string(napi_env env, napi_value object, const char* key, const char* text) {
  napi_value value;
  if (napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &value) != napi_ok) return NULL;
  if (napi_set_named_property(env, object, key, value) != napi_ok) return NULL;
  return object;
}

static napi_value set_number(napi_env env, napi_value object, const char* key, double number) {
  napi_value value;
  if (napi_create_double(env, number, &value) != napi_ok) return NULL;
  if (napi_set_named_property(env, object, key, value) != napi_ok) return NULL;
  return object;
}

static napi_value set_bool(napi_env env, napi_value object, const char* key, bool flag) {
  napi_value value;
  if (napi_get_boolean(env, flag, &value) != napi_ok) return NULL;
  if (napi_set_named_property(env, object, key, value) != napi_ok) return NULL;
  return object;
}

/* ========== realtime ========== */

static napi_value js_set_realtime(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char policy_text[8];
  double priority;
  int policy, lowest, highest;
  struct sched_param param;
  char detail[64];

  SYS_NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || arg_string(env, argv[0], policy_text, sizeof policy_text) != 0)
    return throw_invalid_arg(env, "floatip_sys: setRealtime(policy 'rr' | 'fifo', priority)");
  if (strcmp(policy_text, "rr") == 0) {
    policy = SCHED_RR;
  } else if (strcmp(policy_text, "fifo") == 0) {
    policy = SCHED_FIFO;
  } else {
    return throw_invalid_arg(env, "floatip_sys: setRealtime policy must be 'rr' or 'fifo'");
  }
  lowest = sched_get_priority_min(policy);
  highest = sched_get_priority_max(policy);
  if (arg_number(env, argv[1], &priority) != 0 || priority != floor(priority) ||
      priority < lowest || priority > highest) {
    char message[96];
    snprintf(message, sizeof message,
             "floatip_sys: setRealtime priority must be a whole number %d..%d", lowest, highest);
    return throw_invalid_arg(env, message);
  }
  memset(&param, 0, sizeof param);
  param.sched_priority = (int)priority;
  /* pid 0: the calling thread. SCHED_RESET_ON_FORK: its future children (threads included)
   * start as SCHED_OTHER at nice 0 instead of inheriting the realtime policy. */
  if (sched_setscheduler(0, policy | SCHED_RESET_ON_FORK, &param) != 0) {
    int err = errno;
    snprintf(detail, sizeof detail, "(SCHED_%s, priority %d)", policy == SCHED_RR ? "RR" : "FIFO",
             param.sched_priority);
    return throw_errno(env, err, "sched_setscheduler", detail);
  }
  return NULL;
}

/* A limit in microseconds: a whole number >= 0, or +Infinity for RLIM_INFINITY. */
static int arg_rlimit(napi_env env, napi_value value, rlim_t* out) {
  double number;
  if (arg_number(env, value, &number) != 0) return -1;
  if (isinf(number) && number > 0) {
    *out = RLIM_INFINITY;
    return 0;
  }
  if (!(number >= 0) || number != floor(number) || number > 9007199254740991.0) return -1;
  *out = (rlim_t)number;
  return 0;
}

static napi_value js_set_realtime_cpu_limit(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  struct rlimit limit;
  char detail[96];

  SYS_NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || arg_rlimit(env, argv[0], &limit.rlim_cur) != 0 ||
      arg_rlimit(env, argv[1], &limit.rlim_max) != 0)
    return throw_invalid_arg(
        env, "floatip_sys: setRealtimeCpuLimit(softUs, hardUs): whole microseconds or Infinity");
  if (setrlimit(RLIMIT_RTTIME, &limit) != 0) {
    int err = errno;
    snprintf(detail, sizeof detail, "(RLIMIT_RTTIME, soft %.0f us, hard %.0f us)",
             limit.rlim_cur == RLIM_INFINITY ? INFINITY : (double)limit.rlim_cur,
             limit.rlim_max == RLIM_INFINITY ? INFINITY : (double)limit.rlim_max);
    return throw_errno(env, err, "setrlimit", detail);
  }
  return NULL;
}

/*
 * dieWithParent(): the kernel sends SIGKILL to this process the moment its parent (the
 * thread that forked it) dies, whatever killed the parent (PR_SET_PDEATHSIG). The agent's
 * services process calls it: nothing may act for a control plane that is gone. Returns
 * false when the parent had already died before the call (the caller exits then).
 */
static napi_value js_die_with_parent(napi_env env, napi_callback_info info) {
  napi_value result;
  pid_t parent = getppid();
  (void)info;
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return throw_errno(env, errno, "prctl", "(PR_SET_PDEATHSIG)");
  SYS_NAPI_CALL(env, napi_get_boolean(env, parent != 1 && getppid() == parent, &result));
  return result;
}

/*
 * execProgram(path, argv): execv(path, argv) with the current environment. Replaces the
 * process (every thread of it); returns only by throwing (ENOENT, EACCES, ...). Used by
 * `floatip agent` to become the C supervisor once the configuration has been checked.
 */
static napi_value js_exec_program(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  SYS_NAPI_CALL(env, napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  char path[4096];
  if (argc < 2 || arg_string(env, args[0], path, sizeof path) != 0)
    return throw_invalid_arg(env, "execProgram(path, argv): path must be a non-empty string");
  bool is_array = false;
  uint32_t count = 0;
  if (napi_is_array(env, args[1], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, args[1], &count) != napi_ok || count == 0 || count > 256)
    return throw_invalid_arg(env, "execProgram(path, argv): argv must be an array of 1..256 strings");
  char** argv = calloc(count + 1, sizeof(char*));
  if (argv == NULL) return throw_errno(env, ENOMEM, "calloc", "");
  napi_value result = NULL;
  for (uint32_t i = 0; i < count; i++) {
    napi_value item;
    size_t length = 0;
    napi_valuetype type;
    if (napi_get_element(env, args[1], i, &item) != napi_ok ||
        napi_typeof(env, item, &type) != napi_ok || type != napi_string ||
        napi_get_value_string_utf8(env, item, NULL, 0, &length) != napi_ok) {
      result = throw_invalid_arg(env, "execProgram(path, argv): argv must hold strings only");
      goto done;
    }
    argv[i] = malloc(length + 1);
    if (argv[i] == NULL ||
        napi_get_value_string_utf8(env, item, argv[i], length + 1, &length) != napi_ok) {
      result = throw_errno(env, ENOMEM, "malloc", "");
      goto done;
    }
  }
  /* Node opens its standard streams close-on-exec and non-blocking (pipes and sockets): the
   * program gets them back as a plain process would, inherited and blocking. */
  for (int fd = 0; fd <= 2; fd++) {
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0) fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
    flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  }
  execv(path, argv);
  result = throw_errno(env, errno, "execv", path);
done:
  for (uint32_t i = 0; i < count; i++) free(argv[i]);
  free(argv);
  return result;
}

/*
 * lockExclusive(path, inherit) -> fd: opens (creating) `path` and takes flock(LOCK_EX |
 * LOCK_NB) on it, then writes this process's PID into it. Throws EWOULDBLOCK (code
 * "EWOULDBLOCK" or "EAGAIN") when another open file description holds the lock. With
 * `inherit` the descriptor survives execve (the supervisor keeps it, and its agents inherit
 * it); otherwise it is close-on-exec. The lock lasts as long as any process holds the
 * descriptor: the kernel drops it when the last holder dies, whatever killed it.
 */
static napi_value js_lock_exclusive(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  char path[4096];
  bool inherit = false;
  SYS_NAPI_CALL(env, napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  if (argc < 1 || arg_string(env, args[0], path, sizeof path) != 0)
    return throw_invalid_arg(env, "lockExclusive(path, inherit): path must be a non-empty string");
  if (argc > 1) napi_get_value_bool(env, args[1], &inherit);
  int fd = open(path, O_RDWR | O_CREAT | (inherit ? 0 : O_CLOEXEC), 0644);
  if (fd < 0) return throw_errno(env, errno, "open", path);
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, "flock", path);
  }
  char pid[32];
  int length = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)length, 0) != length) {
    /* The lock is what matters; the PID is only for the other instance's message. */
  }
  napi_value result;
  SYS_NAPI_CALL(env, napi_create_int32(env, fd, &result));
  return result;
}

/*
 * listenFreebind(address, port, backlog) -> fd: a listening TCP socket bound to `address`
 * (IPv4 or IPv6 text) with IP_FREEBIND, so that it binds even while the address is not on any
 * interface yet (a VIP this node may take over later) and accepts connections as soon as it
 * is. SO_REUSEADDR, non-blocking and close-on-exec, ready for net.Server.listen({ fd }).
 */
static napi_value js_listen_freebind(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value args[3];
  char address[INET6_ADDRSTRLEN + 1];
  int32_t port = 0, backlog = 511;
  SYS_NAPI_CALL(env, napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  if (argc < 2 || arg_string(env, args[0], address, sizeof address) != 0 ||
      napi_get_value_int32(env, args[1], &port) != napi_ok || port < 0 || port > 65535)
    return throw_invalid_arg(env, "listenFreebind(address, port, backlog): bad address or port");
  if (argc > 2) napi_get_value_int32(env, args[2], &backlog);
  struct sockaddr_storage storage;
  memset(&storage, 0, sizeof storage);
  socklen_t length;
  int family;
  struct sockaddr_in* v4 = (struct sockaddr_in*)&storage;
  struct sockaddr_in6* v6 = (struct sockaddr_in6*)&storage;
  if (inet_pton(AF_INET, address, &v4->sin_addr) == 1) {
    family = AF_INET;
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    length = sizeof *v4;
  } else if (inet_pton(AF_INET6, address, &v6->sin6_addr) == 1) {
    family = AF_INET6;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    length = sizeof *v6;
  } else {
    return throw_invalid_arg(env, "listenFreebind: address is not an IPv4 or IPv6 address");
  }
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket", address);
  int one = 1;
  const char* step = NULL;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) step = "SO_REUSEADDR";
  else if (family == AF_INET && setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof one) != 0)
    step = "IP_FREEBIND";
  else if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof one) != 0)
    step = "IPV6_FREEBIND";
  else if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0)
    step = "IPV6_V6ONLY";
  else if (bind(fd, (struct sockaddr*)&storage, length) != 0)
    step = "bind";
  else if (listen(fd, backlog) != 0)
    step = "listen";
  if (step != NULL) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, step, address);
  }
  napi_value result;
  SYS_NAPI_CALL(env, napi_create_int32(env, fd, &result));
  return result;
}

/*
 * sdNotify(socketPath, text) -> bytes sent: one datagram to systemd's notification socket
 * ($NOTIFY_SOCKET: a path, or an abstract name written with a leading '@'), as
 * sd_notify(3) sends it. Throws with the errno on failure.
 */
static napi_value js_sd_notify(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  char path[sizeof(((struct sockaddr_un*)0)->sun_path) + 1];
  char text[4096];
  SYS_NAPI_CALL(env, napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  if (argc < 2 || arg_string(env, args[0], path, sizeof path) != 0 ||
      arg_string(env, args[1], text, sizeof text) != 0)
    return throw_invalid_arg(env, "sdNotify(socketPath, text): both must be non-empty strings");
  struct sockaddr_un address;
  memset(&address, 0, sizeof address);
  address.sun_family = AF_UNIX;
  size_t length = strlen(path);
  if (length >= sizeof address.sun_path)
    return throw_invalid_arg(env, "sdNotify: socket path too long");
  memcpy(address.sun_path, path, length);
  if (path[0] == '@') address.sun_path[0] = '\0';
  socklen_t size = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + length);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket", path);
  ssize_t sent = sendto(fd, text, strlen(text), MSG_NOSIGNAL, (struct sockaddr*)&address, size);
  int err = errno;
  close(fd);
  if (sent < 0) return throw_errno(env, err, "sendto", path);
  napi_value result;
  SYS_NAPI_CALL(env, napi_create_int32(env, (int32_t)sent, &result));
  return result;
}

static napi_value js_lock_memory(napi_env env, napi_callback_info info) {
  napi_value result;
  bool on_fault = true;
  (void)info;
  /* MCL_ONFAULT: lock pages as they are touched instead of faulting in every mapping now, so
   * the V8 heap reservations do not all become resident. */
  if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0) {
    int err = errno;
    if (err != EINVAL) return throw_errno(env, err, "mlockall", "(MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT)");
    /* Kernels before 4.4 do not know MCL_ONFAULT. */
    on_fault = false;
    if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0)
      return throw_errno(env, errno, "mlockall", "(MCL_CURRENT|MCL_FUTURE)");
  }
  SYS_NAPI_CALL(env, napi_create_object(env, &result));
  if (set_bool(env, result, "onFault", on_fault) == NULL) return NULL;
  return result;
}

/* ---------- lockMappedFiles ---------- */

#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 0x01
#endif
#define MAPS_INITIAL_BYTES 65536
#define MAPS_MAX_BYTES (64u << 20)

typedef struct {
  uintptr_t start;
  uintptr_t end;
} mapped_region;

/* Reads all of a /proc file (its size is unknown until read). Returns a NUL-terminated
 * malloc'ed buffer, or NULL with *error set. */
static char* read_proc_file(const char* path, sys_error* error) {
  size_t capacity = MAPS_INITIAL_BYTES, length = 0;
  char* buffer = malloc(capacity);
  int fd;
  if (buffer == NULL) {
    set_sys_error(error, ENOMEM, "malloc", "floatip_sys: out of memory reading %s", path);
    return NULL;
  }
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    free(buffer);
    set_sys_error(error, err, "open", "floatip_sys: open %s failed: %s", path, strerror(err));
    return NULL;
  }
  for (;;) {
    ssize_t got;
    if (capacity - length < 4096) {
      char* grown;
      if (capacity >= MAPS_MAX_BYTES) {
        set_sys_error(error, EFBIG, "read", "floatip_sys: %s is larger than %u bytes", path,
                      MAPS_MAX_BYTES);
        goto failed;
      }
      grown = realloc(buffer, capacity * 2);
      if (grown == NULL) {
        set_sys_error(error, ENOMEM, "realloc", "floatip_sys: out of memory reading %s", path);
        goto failed;
      }
      buffer = grown;
      capacity *= 2;
    }
    got = read(fd, buffer + length, capacity - length - 1);
    if (got < 0) {
      int err = errno;
      if (err == EINTR) continue;
      set_sys_error(error, err, "read", "floatip_sys: read %s failed: %s", path, strerror(err));
      goto failed;
    }
    if (got == 0) break;
    length += (size_t)got;
  }
  close(fd);
  buffer[length] = '\0';
  return buffer;
failed:
  close(fd);
  free(buffer);
  return NULL;
}

static bool ends_with(const char* text, size_t length, const char* suffix) {
  size_t suffix_length = strlen(suffix);
  return length >= suffix_length &&
         memcmp(text + length - suffix_length, suffix, suffix_length) == 0;
}

/* Parses one /proc/self/maps line ("start-end perms offset dev inode   path") and says whether
 * it is a readable mapping of a file that a page-in would read back from disk: a path that
 * starts with "/" (not "[heap]", "[stack]", "[vdso]", "anon_inode:..." or an anonymous mapping
 * without a path), an inode, not " (deleted)" (memfd, shared anonymous memory "/dev/zero",
 * SysV shm, replaced files) and not under /dev/ (device memory and tmpfs). */
static bool parse_file_mapping(const char* line, size_t length, mapped_region* out) {
  unsigned long long start, end, offset, inode;
  unsigned int major, minor;
  char perms[5];
  int consumed = 0;
  const char* path;
  size_t path_length;
  if (sscanf(line, "%llx-%llx %4s %llx %x:%x %llu %n", &start, &end, perms, &offset, &major,
             &minor, &inode, &consumed) != 7 ||
      consumed <= 0 || (size_t)consumed > length)
    return false;
  path = line + consumed;
  path_length = length - (size_t)consumed;
  if (path_length == 0 || path[0] != '/' || inode == 0 || end <= start) return false;
  if (perms[0] != 'r') return false;
  if (ends_with(path, path_length, " (deleted)")) return false;
  if (path_length >= 5 && memcmp(path, "/dev/", 5) == 0) return false;
  out->start = (uintptr_t)start;
  out->end = (uintptr_t)end;
  return true;
}

static int mlock2_missing; /* the kernel answered ENOSYS once (Linux < 4.4) */

/* mlock2(MLOCK_ONFAULT) when `on_fault` and the kernel has it, else mlock(). */
static int lock_range(const mapped_region* region, bool on_fault) {
  void* address = (void*)region->start;
  size_t length = region->end - region->start;
#ifdef SYS_mlock2
  if (on_fault && !__atomic_load_n(&mlock2_missing, __ATOMIC_RELAXED)) {
    if (syscall(SYS_mlock2, address, length, MLOCK_ONFAULT) == 0) return 0;
    if (errno != ENOSYS) return -1;
    __atomic_store_n(&mlock2_missing, 1, __ATOMIC_RELAXED);
  }
#else
  (void)on_fault;
#endif
  return mlock(address, length);
}

static napi_value js_lock_mapped_files(napi_env env, napi_callback_info info) {
  napi_value result;
  sys_error error;
  char* maps;
  char* line;
  double regions = 0, bytes = 0, failed = 0;
  int first_err = 0;
  mapped_region first_failed = {0, 0};
  (void)info;

  /* The whole file first: locking merges and splits VMAs, which would shift a file being read
   * line by line under us. */
  maps = read_proc_file("/proc/self/maps", &error);
  if (maps == NULL) return throw_sys_error(env, &error);
  for (line = maps; *line != '\0';) {
    char* newline = strchr(line, '\n');
    size_t length;
    mapped_region region;
    if (newline != NULL) *newline = '\0'; /* sscanf must not skip into the next line */
    length = strlen(line);
    if (parse_file_mapping(line, length, &region)) {
      /* Every mapping is locked as touched (MLOCK_ONFAULT): the pages the process has used
       * (start-up, election, address and ARP paths, the steady state) stay resident, and
       * none is read in only to be locked. Populating the node binary's 43 MB of code cost
       * about 30 MB of resident memory per process for code no path runs, and populating a
       * writable private mapping makes private (anonymous) copies of its pages. */
      bool on_fault = true;
      if (lock_range(&region, on_fault) == 0) {
        regions += 1;
        bytes += (double)(region.end - region.start);
      } else {
        int err = errno;
        if (err == EPERM) {
          /* No CAP_IPC_LOCK and RLIMIT_MEMLOCK 0: no region can be locked. */
          char detail[64];
          bool used_mlock2 = on_fault && !__atomic_load_n(&mlock2_missing, __ATOMIC_RELAXED);
          free(maps);
          snprintf(detail, sizeof detail, "(%#lx, %lu bytes)", (unsigned long)region.start,
                   (unsigned long)(region.end - region.start));
          return throw_errno(env, err, used_mlock2 ? "mlock2" : "mlock", detail);
        }
        /* ENOMEM: RLIMIT_MEMLOCK reached, or the mapping went away since the read (dlclose);
         * EAGAIN: some pages could not be locked. Not fatal; the other regions still count. */
        if (first_err == 0) {
          first_err = err;
          first_failed = region;
        }
        failed += 1;
      }
    }
    if (newline == NULL) break;
    line = newline + 1;
  }
  free(maps);
  if (regions == 0 && failed > 0) {
    char detail[112];
    snprintf(detail, sizeof detail, "of every file mapping (%.0f; the first: %#lx, %lu bytes)",
             failed, (unsigned long)first_failed.start,
             (unsigned long)(first_failed.end - first_failed.start));
    return throw_errno(env, first_err, "mlock", detail);
  }
  SYS_NAPI_CALL(env, napi_create_object(env, &result));
  if (set_number(env, result, "regions", regions) == NULL ||
      set_number(env, result, "bytes", bytes) == NULL ||
      set_number(env, result, "failed", failed) == NULL)
    return NULL;
  return result;
}

static const char* policy_name(int policy) {
  switch (policy) {
    case SCHED_OTHER: return "other";
    case SCHED_FIFO: return "fifo";
    case SCHED_RR: return "rr";
#ifdef SCHED_BATCH
    case SCHED_BATCH: return "batch";
#endif
#ifdef SCHED_IDLE
    case SCHED_IDLE: return "idle";
#endif
    case SCHED_DEADLINE: return "deadline";
    case SCHED_EXT: return "ext";
    default: return "unknown";
  }
}

static napi_value js_current_scheduling(napi_env env, napi_callback_info info) {
  napi_value result;
  struct sched_param param;
  int policy;
  (void)info;
  policy = sched_getscheduler(0);
  if (policy < 0) return throw_errno(env, errno, "sched_getscheduler", "");
  memset(&param, 0, sizeof param);
  /* SCHED_DEADLINE threads make sched_getparam report priority 0, which is right. */
  if (sched_getparam(0, &param) != 0) return throw_errno(env, errno, "sched_getparam", "");
  SYS_NAPI_CALL(env, napi_create_object(env, &result));
  if (set_string(env, result, "policy", policy_name(policy & ~SCHED_RESET_ON_FORK)) == NULL ||
      set_number(env, result, "priority", param.sched_priority) == NULL ||
      set_bool(env, result, "resetOnFork", (policy & SCHED_RESET_ON_FORK) != 0) == NULL ||
      set_number(env, result, "tid", (double)syscall(SYS_gettid)) == NULL)
    return NULL;
  return result;
}

/* ========== rtnetlink ========== */

typedef struct {
  int fd;
  uint32_t port;  /* our netlink port id, assigned by the kernel at bind */
  int timeout_ms;
  int64_t deadline_ms;
} nl_socket;

typedef struct {
  uint8_t family; /* AF_INET or AF_INET6 */
  uint8_t prefix_length;
  uint8_t address[16];
  uint32_t valid;
  uint32_t preferred;
  uint32_t flags; /* IFA_F_*: ifa_flags, or the IFA_FLAGS attribute when present */
} nl_address;

typedef struct {
  nl_address* items;
  size_t count;
  size_t capacity;
} nl_address_list;

static uint32_t sequence_counter;

static uint32_t next_sequence(void) {
  uint32_t value = __atomic_add_fetch(&sequence_counter, 1, __ATOMIC_RELAXED);
  if (value == 1) {
    /* Start somewhere unpredictable so replies to another process's requests never match. */
    uint32_t start = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16);
    __atomic_add_fetch(&sequence_counter, start, __ATOMIC_RELAXED);
    value += start;
  }
  return value == 0 ? next_sequence() : value;
}

static int64_t now_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void nl_close(nl_socket* sock) {
  if (sock->fd >= 0) close(sock->fd);
  sock->fd = -1;
}

static int nl_open(nl_socket* sock, int timeout_ms, sys_error* error) {
  struct sockaddr_nl local;
  socklen_t local_length = sizeof local;
  struct timeval timeout;
  int one = 1;
  sock->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  sock->timeout_ms = timeout_ms;
  sock->deadline_ms = now_ms() + timeout_ms;
  if (sock->fd < 0) {
    set_sys_error(error, errno, "socket", "floatip_sys: socket(AF_NETLINK, NETLINK_ROUTE) failed: %s",
                  strerror(errno));
    return -1;
  }
  timeout.tv_sec = timeout_ms / 1000;
  timeout.tv_usec = (timeout_ms % 1000) * 1000;
  if (setsockopt(sock->fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) != 0 ||
      setsockopt(sock->fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout) != 0) {
    set_sys_error(error, errno, "setsockopt", "floatip_sys: setsockopt(SO_RCVTIMEO) failed: %s",
                  strerror(errno));
    nl_close(sock);
    return -1;
  }
  /* Best effort: error strings from the kernel, no echo of our request in errors, and dumps
   * that honour the interface filter (Linux >= 4.20). Older kernels simply ignore them. */
  setsockopt(sock->fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(sock->fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  setsockopt(sock->fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof one);
  memset(&local, 0, sizeof local);
  local.nl_family = AF_NETLINK;
  if (bind(sock->fd, (struct sockaddr*)&local, sizeof local) != 0 ||
      getsockname(sock->fd, (struct sockaddr*)&local, &local_length) != 0) {
    set_sys_error(error, errno, "bind", "floatip_sys: bind(AF_NETLINK) failed: %s", strerror(errno));
    nl_close(sock);
    return -1;
  }
  sock->port = local.nl_pid;
  return 0;
}

static int nl_send(nl_socket* sock, struct nlmsghdr* request, sys_error* error) {
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  for (;;) {
    ssize_t sent = sendto(sock->fd, request, request->nlmsg_len, 0, (struct sockaddr*)&kernel,
                          sizeof kernel);
    if (sent == (ssize_t)request->nlmsg_len) return 0;
    if (sent < 0 && errno == EINTR && now_ms() < sock->deadline_ms) continue;
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      set_sys_error(error, ETIMEDOUT, "sendto",
                    "floatip_sys: netlink send did not complete within %d ms", sock->timeout_ms);
    } else {
      set_sys_error(error, sent < 0 ? errno : EMSGSIZE, "sendto",
                    "floatip_sys: netlink send failed: %s",
                    sent < 0 ? strerror(errno) : "short write");
    }
    return -1;
  }
}

/* Receives one datagram from the kernel into buffer; returns its length or -1. */
static ssize_t nl_receive(nl_socket* sock, uint8_t* buffer, size_t size, sys_error* error) {
  for (;;) {
    struct sockaddr_nl from;
    socklen_t from_length = sizeof from;
    ssize_t length;
    if (now_ms() >= sock->deadline_ms) {
      set_sys_error(error, ETIMEDOUT, "recvfrom",
                    "floatip_sys: no complete netlink reply within %d ms", sock->timeout_ms);
      return -1;
    }
    /* MSG_TRUNC makes a netlink socket return the real length of a datagram that did not fit. */
    length = recvfrom(sock->fd, buffer, size, MSG_TRUNC, (struct sockaddr*)&from, &from_length);
    if (length < 0 && errno == EINTR) continue;
    if (length < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      set_sys_error(error, ETIMEDOUT, "recvfrom",
                    "floatip_sys: no netlink reply from the kernel within %d ms", sock->timeout_ms);
      return -1;
    }
    if (length < 0) {
      set_sys_error(error, errno, "recvfrom", "floatip_sys: netlink receive failed: %s",
                    strerror(errno));
      return -1;
    }
    if ((size_t)length > size) {
      set_sys_error(error, EMSGSIZE, "recvfrom",
                    "floatip_sys: netlink reply of %zd bytes did not fit the %zu-byte buffer",
                    length, size);
      return -1;
    }
    if (from.nl_family != AF_NETLINK || from.nl_pid != 0) continue; /* not from the kernel */
    return length;
  }
}

/* Extended ACK: copies the kernel's error string (NLMSGERR_ATTR_MSG), if any, into text. */
static void ack_message(const struct nlmsghdr* header, char* text, size_t size) {
  const struct nlmsgerr* err = NLMSG_DATA(header);
  size_t offset = sizeof *err, total;
  text[0] = '\0';
  if (!(header->nlmsg_flags & NLM_F_ACK_TLVS)) return;
  if (!(header->nlmsg_flags & NLM_F_CAPPED)) offset += err->msg.nlmsg_len - NLMSG_HDRLEN;
  total = header->nlmsg_len - NLMSG_HDRLEN;
  while (offset + NLA_HDRLEN <= total) {
    const struct nlattr* attribute = (const struct nlattr*)((const uint8_t*)err + offset);
    if (attribute->nla_len < NLA_HDRLEN || offset + attribute->nla_len > total) return;
    if ((attribute->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) {
      size_t length = attribute->nla_len - NLA_HDRLEN;
      if (length >= size) length = size - 1;
      memcpy(text, (const uint8_t*)attribute + NLA_HDRLEN, length);
      text[length] = '\0';
      length = strnlen(text, length);
      while (length > 0 && (text[length - 1] == '\n' || text[length - 1] == '\0'))
        text[--length] = '\0';
      return;
    }
    offset += NLA_ALIGN(attribute->nla_len);
  }
}

static void set_kernel_error(sys_error* error, const struct nlmsghdr* header, int err,
                             const char* what) {
  char extack[200];
  ack_message(header, extack, sizeof extack);
  set_sys_error(error, err, what, "floatip_sys: %s: %s%s%s", what, strerror(err),
                extack[0] ? " - " : "", extack);
}

static int list_push(nl_address_list* list, const nl_address* item) {
  if (list->count == list->capacity) {
    size_t capacity = list->capacity ? list->capacity * 2 : 16;
    nl_address* items = realloc(list->items, capacity * sizeof *items);
    if (items == NULL) return -1;
    list->items = items;
    list->capacity = capacity;
  }
  list->items[list->count++] = *item;
  return 0;
}

/* Parses one RTM_NEWADDR message; returns 1 when it is an address of ifindex, 0 to skip. */
static int parse_address(const struct nlmsghdr* header, unsigned int ifindex, nl_address* out) {
  const struct ifaddrmsg* message = NLMSG_DATA(header);
  const struct rtattr* attribute;
  const void* local = NULL;
  const void* address = NULL;
  const struct ifa_cacheinfo* cache = NULL;
  uint32_t flags;
  int remaining;
  size_t length;
  if (header->nlmsg_len < NLMSG_LENGTH(sizeof *message)) return 0;
  flags = message->ifa_flags;
  if (message->ifa_index != ifindex) return 0;
  if (message->ifa_family == AF_INET) {
    length = 4;
  } else if (message->ifa_family == AF_INET6) {
    length = 16;
  } else {
    return 0;
  }
  remaining = (int)IFA_PAYLOAD(header);
  for (attribute = IFA_RTA(message); RTA_OK(attribute, remaining);
       attribute = RTA_NEXT(attribute, remaining)) {
    size_t payload = RTA_PAYLOAD(attribute);
    switch (attribute->rta_type) {
      case IFA_LOCAL:
        if (payload >= length) local = RTA_DATA(attribute);
        break;
      case IFA_ADDRESS:
        if (payload >= length) address = RTA_DATA(attribute);
        break;
      case IFA_CACHEINFO:
        if (payload >= sizeof *cache) cache = RTA_DATA(attribute);
        break;
      case IFA_FLAGS:
        if (payload >= sizeof flags) memcpy(&flags, RTA_DATA(attribute), sizeof flags);
        break;
      default:
        break;
    }
  }
  /* Like iproute2: IFA_LOCAL is the local address (IFA_ADDRESS is then the peer of a
   * point-to-point link); IPv6 usually sends only IFA_ADDRESS. */
  if (local == NULL) local = address;
  if (local == NULL) return 0;
  memset(out, 0, sizeof *out);
  out->family = message->ifa_family;
  out->prefix_length = message->ifa_prefixlen;
  memcpy(out->address, local, length);
  out->valid = cache ? cache->ifa_valid : INFINITY_LIFE_TIME;
  out->preferred = cache ? cache->ifa_prefered : INFINITY_LIFE_TIME;
  out->flags = flags;
  return 1;
}

/* One RTM_GETADDR dump. Returns 0, 1 when the kernel flagged it inconsistent, -1 on error. */
static int dump_addresses(unsigned int ifindex, int timeout_ms, nl_address_list* list,
                          uint8_t* buffer, sys_error* error) {
  struct {
    struct nlmsghdr header;
    struct ifaddrmsg message;
  } request;
  nl_socket sock;
  int interrupted = 0;
  if (nl_open(&sock, timeout_ms, error) != 0) return -1;
  memset(&request, 0, sizeof request);
  request.header.nlmsg_len = NLMSG_LENGTH(sizeof request.message);
  request.header.nlmsg_type = RTM_GETADDR;
  request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  request.header.nlmsg_seq = next_sequence();
  request.message.ifa_family = AF_UNSPEC;
  request.message.ifa_index = ifindex; /* a filter for kernels with strict checking */
  if (nl_send(&sock, &request.header, error) != 0) goto failed;
  for (;;) {
    ssize_t received = nl_receive(&sock, buffer, RECV_BUFFER_BYTES, error);
    int remaining;
    struct nlmsghdr* header;
    if (received < 0) goto failed;
    remaining = (int)received;
    for (header = (struct nlmsghdr*)buffer; NLMSG_OK(header, (unsigned int)remaining);
         header = NLMSG_NEXT(header, remaining)) {
      if (header->nlmsg_seq != request.header.nlmsg_seq || header->nlmsg_pid != sock.port)
        continue; /* a late reply to some earlier request */
      if (header->nlmsg_flags & NLM_F_DUMP_INTR) interrupted = 1;
      if (header->nlmsg_type == NLMSG_DONE) {
        if (header->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) {
          int status = *(const int*)NLMSG_DATA(header);
          if (status < 0) {
            set_kernel_error(error, header, -status, "RTM_GETADDR dump");
            goto failed;
          }
        }
        nl_close(&sock);
        return interrupted;
      }
      if (header->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr* err = NLMSG_DATA(header);
        if (header->nlmsg_len < NLMSG_LENGTH(sizeof *err)) {
          set_sys_error(error, EPROTO, "RTM_GETADDR", "floatip_sys: truncated netlink error");
          goto failed;
        }
        if (err->error == 0) continue;
        set_kernel_error(error, header, -err->error, "RTM_GETADDR dump");
        goto failed;
      }
      if (header->nlmsg_type == RTM_NEWADDR) {
        nl_address item;
        if (parse_address(header, ifindex, &item) && list_push(list, &item) != 0) {
          set_sys_error(error, ENOMEM, "realloc", "floatip_sys: out of memory");
          goto failed;
        }
      }
    }
  }
failed:
  nl_close(&sock);
  return -1;
}

static unsigned int interface_index(const char* ifname, sys_error* error) {
  unsigned int index = if_nametoindex(ifname);
  if (index == 0) {
    int err = errno == ENXIO || errno == 0 ? ENODEV : errno;
    set_sys_error(error, err, "if_nametoindex", "floatip_sys: no such interface '%s'%s%s", ifname,
                  err == ENODEV ? "" : ": ", err == ENODEV ? "" : strerror(err));
  }
  return index;
}

static napi_value lifetime_value(napi_env env, uint32_t seconds) {
  napi_value value;
  if (seconds == INFINITY_LIFE_TIME) {
    if (napi_create_string_utf8(env, "forever", NAPI_AUTO_LENGTH, &value) != napi_ok) return NULL;
  } else if (napi_create_uint32(env, seconds, &value) != napi_ok) {
    return NULL;
  }
  return value;
}

static napi_value address_object(napi_env env, const nl_address* item) {
  napi_value object, value;
  char text[INET6_ADDRSTRLEN];
  if (inet_ntop(item->family, item->address, text, sizeof text) == NULL) return NULL;
  if (napi_create_object(env, &object) != napi_ok) return NULL;
  if (set_string(env, object, "ip", text) == NULL ||
      set_number(env, object, "prefixLength", item->prefix_length) == NULL ||
      set_number(env, object, "family", item->family == AF_INET ? 4 : 6) == NULL)
    return NULL;
  value = lifetime_value(env, item->valid);
  if (value == NULL || napi_set_named_property(env, object, "validLftSec", value) != napi_ok)
    return NULL;
  value = lifetime_value(env, item->preferred);
  if (value == NULL || napi_set_named_property(env, object, "preferredLftSec", value) != napi_ok)
    return NULL;
  /* IPv6 duplicate address detection: still running, or another host answered for it. */
  if (set_bool(env, object, "tentative", (item->flags & IFA_F_TENTATIVE) != 0) == NULL ||
      set_bool(env, object, "dadFailed", (item->flags & IFA_F_DADFAILED) != 0) == NULL)
    return NULL;
  return object;
}

static napi_value js_list_addresses(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result;
  char ifname[IF_NAMESIZE + 1];
  unsigned int ifindex;
  int timeout_ms, attempt, status = -1;
  nl_address_list list = {NULL, 0, 0};
  sys_error error;
  uint8_t* buffer;
  size_t i;

  SYS_NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || arg_string(env, argv[0], ifname, IF_NAMESIZE) != 0)
    return throw_invalid_arg(env, "floatip_sys: listAddresses(ifname, timeoutMs?) needs an "
                                  "interface name of 1 to 15 bytes");
  if (arg_timeout(env, argc, argv, 1, &timeout_ms) != 0)
    return throw_invalid_arg(env, "floatip_sys: timeoutMs must be a whole number 1..60000");
  ifindex = interface_index(ifname, &error);
  if (ifindex == 0) return throw_sys_error(env, &error);
  buffer = malloc(RECV_BUFFER_BYTES);
  if (buffer == NULL) return throw_errno(env, ENOMEM, "malloc", "");
  /* A dump that raced with address changes is flagged NLM_F_DUMP_INTR: take it again. */
  for (attempt = 0; attempt < DUMP_ATTEMPTS; attempt++) {
    list.count = 0;
    status = dump_addresses(ifindex, timeout_ms, &list, buffer, &error);
    if (status <= 0) break;
  }
  free(buffer);
  if (status == 1) {
    set_sys_error(&error, EINTR, "RTM_GETADDR",
                  "floatip_sys: the address dump of '%s' was interrupted by concurrent changes %d "
                  "times in a row",
                  ifname, DUMP_ATTEMPTS);
    status = -1;
  }
  if (status < 0) {
    free(list.items);
    return throw_sys_error(env, &error);
  }
  if (napi_create_array_with_length(env, list.count, &result) != napi_ok) {
    free(list.items);
    napi_throw_error(env, "ERR_NAPI", "floatip_sys: cannot create the result array");
    return NULL;
  }
  for (i = 0; i < list.count; i++) {
    napi_value object = address_object(env, &list.items[i]);
    if (object == NULL || napi_set_element(env, result, (uint32_t)i, object) != napi_ok) {
      free(list.items);
      napi_throw_error(env, "ERR_NAPI", "floatip_sys: cannot build an address object");
      return NULL;
    }
  }
  free(list.items);
  return result;
}

static void add_attribute(struct nlmsghdr* header, size_t capacity, unsigned short type,
                          const void* data, size_t length) {
  struct rtattr* attribute = (struct rtattr*)((uint8_t*)header + NLMSG_ALIGN(header->nlmsg_len));
  size_t total = RTA_LENGTH(length);
  if (NLMSG_ALIGN(header->nlmsg_len) + RTA_ALIGN(total) > capacity) abort(); /* sized below */
  attribute->rta_type = type;
  attribute->rta_len = (unsigned short)total;
  memcpy(RTA_DATA(attribute), data, length);
  header->nlmsg_len = NLMSG_ALIGN(header->nlmsg_len) + RTA_ALIGN(total);
}

/*
 * Sends one RTM_NEWADDR REPLACE (ip address change) for ADDRESS/PREFIX on `ifindex` with valid
 * = preferred = `valid` seconds over `sock`, and waits for its ACK. 0, or -1 with `error` set.
 */
static int renew_one(nl_socket* sock, uint8_t* buffer, unsigned int ifindex, int family,
                     const uint8_t* address, int prefix_length, uint32_t valid,
                     const char* ip_text, const char* ifname, sys_error* error) {
  union {
    struct nlmsghdr header;
    uint8_t bytes[256];
  } request;
  struct ifaddrmsg* message;
  struct ifa_cacheinfo cache;
  size_t address_length = family == AF_INET ? 4 : 16;

  memset(&request, 0, sizeof request);
  request.header.nlmsg_len = NLMSG_LENGTH(sizeof *message);
  request.header.nlmsg_type = RTM_NEWADDR;
  /* REPLACE without CREATE: change the existing address (ip address change). */
  request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE;
  request.header.nlmsg_seq = next_sequence();
  message = NLMSG_DATA(&request.header);
  message->ifa_family = (uint8_t)family;
  message->ifa_prefixlen = (uint8_t)prefix_length;
  message->ifa_index = ifindex;
  add_attribute(&request.header, sizeof request, IFA_LOCAL, address, address_length);
  add_attribute(&request.header, sizeof request, IFA_ADDRESS, address, address_length);
  memset(&cache, 0, sizeof cache);
  cache.ifa_valid = valid;
  cache.ifa_prefered = valid;
  add_attribute(&request.header, sizeof request, IFA_CACHEINFO, &cache, sizeof cache);
  if (family == AF_INET6) {
    /* A change resets the flags it does not carry: keep nodad (floatip probes for itself;
     * without it the kernel runs DAD again when the link comes back up). */
    uint32_t flags = IFA_F_NODAD;
    message->ifa_flags = (uint8_t)flags;
    add_attribute(&request.header, sizeof request, IFA_FLAGS, &flags, sizeof flags);
  }
  if (nl_send(sock, &request.header, error) != 0) return -1;
  for (;;) {
    ssize_t received = nl_receive(sock, buffer, RECV_BUFFER_BYTES, error);
    int remaining;
    struct nlmsghdr* header;
    if (received < 0) return -1;
    remaining = (int)received;
    for (header = (struct nlmsghdr*)buffer; NLMSG_OK(header, (unsigned int)remaining);
         header = NLMSG_NEXT(header, remaining)) {
      const struct nlmsgerr* err;
      if (header->nlmsg_seq != request.header.nlmsg_seq || header->nlmsg_pid != sock->port ||
          header->nlmsg_type != NLMSG_ERROR)
        continue;
      err = NLMSG_DATA(header);
      if (header->nlmsg_len < NLMSG_LENGTH(sizeof *err)) {
        set_sys_error(error, EPROTO, "RTM_NEWADDR", "floatip_sys: truncated netlink ACK");
        return -1;
      }
      if (err->error != 0) {
        char what[96];
        snprintf(what, sizeof what, "RTM_NEWADDR %s/%d dev %s", ip_text, prefix_length, ifname);
        set_kernel_error(error, header, -err->error, what);
        snprintf(error->syscall, sizeof error->syscall, "RTM_NEWADDR");
        return -1;
      }
      return 0; /* ACK */
    }
  }
}

/* Parses an IP string into `address`; returns its family, or 0 when it is not an IP. */
static int parse_ip(const char* text, uint8_t address[16]) {
  if (inet_pton(AF_INET, text, address) == 1) return AF_INET;
  if (inet_pton(AF_INET6, text, address) == 1) return AF_INET6;
  return 0;
}

/* An error value (not thrown): { code, message } like a thrown sys error's. */
static napi_value sys_error_value(napi_env env, const sys_error* error) {
  napi_value object, value;
  char code_text[24];
  const char* name = errno_name(error->err);
  if (name == NULL) {
    snprintf(code_text, sizeof code_text, "ERRNO_%d", error->err);
    name = code_text;
  }
  if (napi_create_object(env, &object) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &value) != napi_ok ||
      napi_set_named_property(env, object, "code", value) != napi_ok ||
      napi_create_string_utf8(env, error->message, NAPI_AUTO_LENGTH, &value) != napi_ok ||
      napi_set_named_property(env, object, "message", value) != napi_ok)
    return NULL;
  return object;
}

/*
 * renewAddressLifetimes(ifname, ips, prefixLengths, validLftSec, timeoutMs?) -> array with, per
 * address, null (renewed) or { code, message }: the change of `ip address change` for many
 * addresses over one netlink socket (a socket per address cost a 1,000-VIP node ~40 ms of
 * its control loop every renewal round). timeoutMs bounds the whole call; addresses not
 * reached by then get the timeout's error.
 */
static napi_value js_renew_address_lifetimes(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], result, item, prefix_value;
  char ifname[IF_NAMESIZE + 1], ip_text[INET6_ADDRSTRLEN + 1];
  uint8_t address[16];
  double prefix_length, valid;
  uint32_t count, prefix_count, i;
  int family, timeout_ms;
  bool is_array;
  unsigned int ifindex;
  uint8_t* buffer;
  nl_socket sock;
  sys_error error, broken;

  SYS_NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4 || arg_string(env, argv[0], ifname, IF_NAMESIZE) != 0)
    return throw_invalid_arg(env, "floatip_sys: renewAddressLifetimes(ifname, ips, "
                                  "prefixLengths, validLftSec, timeoutMs?) needs an interface "
                                  "name of 1 to 15 bytes");
  if (napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[1], &count) != napi_ok ||
      napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[2], &prefix_count) != napi_ok || prefix_count != count)
    return throw_invalid_arg(env, "floatip_sys: renewAddressLifetimes needs two arrays of one "
                                  "length: ips and prefixLengths");
  if (arg_number(env, argv[3], &valid) != 0 || valid != floor(valid) || valid < 1 ||
      valid >= (double)INFINITY_LIFE_TIME)
    return throw_invalid_arg(env, "floatip_sys: validLftSec must be a whole number of seconds "
                                  "from 1 to 4294967294");
  if (arg_timeout(env, argc, argv, 4, &timeout_ms) != 0)
    return throw_invalid_arg(env, "floatip_sys: timeoutMs must be a whole number 1..60000");
  /* Every argument is checked before anything is changed. */
  for (i = 0; i < count; i++) {
    if (napi_get_element(env, argv[1], i, &item) != napi_ok ||
        arg_string(env, item, ip_text, sizeof ip_text) != 0 ||
        (family = parse_ip(ip_text, address)) == 0)
      return throw_invalid_arg(env, "floatip_sys: renewAddressLifetimes: every ip must be an IP "
                                    "string");
    if (napi_get_element(env, argv[2], i, &prefix_value) != napi_ok ||
        arg_number(env, prefix_value, &prefix_length) != 0 ||
        prefix_length != floor(prefix_length) || prefix_length < 0 ||
        prefix_length > (family == AF_INET ? 32 : 128))
      return throw_invalid_arg(env, "floatip_sys: prefixLength out of range for the address "
                                    "family");
  }
  ifindex = interface_index(ifname, &error);
  if (ifindex == 0) return throw_sys_error(env, &error);
  if (nl_open(&sock, timeout_ms, &error) != 0) return throw_sys_error(env, &error);
  buffer = malloc(RECV_BUFFER_BYTES);
  if (buffer == NULL) {
    nl_close(&sock);
    return throw_errno(env, ENOMEM, "malloc", "");
  }
  if (napi_create_array_with_length(env, count, &result) != napi_ok) {
    free(buffer);
    nl_close(&sock);
    napi_throw_error(env, "EINTERNAL", "floatip_sys: N-API call failed");
    return NULL;
  }
  broken.err = 0;
  for (i = 0; i < count; i++) {
    napi_value outcome;
    napi_get_element(env, argv[1], i, &item);
    arg_string(env, item, ip_text, sizeof ip_text);
    family = parse_ip(ip_text, address);
    napi_get_element(env, argv[2], i, &prefix_value);
    arg_number(env, prefix_value, &prefix_length);
    if (broken.err != 0) {
      /* The socket failed (the deadline passed): the rest is not attempted. */
      outcome = sys_error_value(env, &broken);
    } else if (renew_one(&sock, buffer, ifindex, family, address, (int)prefix_length,
                         (uint32_t)valid, ip_text, ifname, &error) == 0) {
      napi_get_null(env, &outcome);
    } else {
      /* A kernel refusal concerns this address only; a socket error ends the batch. */
      if (strcmp(error.syscall, "RTM_NEWADDR") != 0) broken = error;
      outcome = sys_error_value(env, &error);
    }
    if (outcome == NULL || napi_set_element(env, result, i, outcome) != napi_ok) {
      free(buffer);
      nl_close(&sock);
      napi_throw_error(env, "EINTERNAL", "floatip_sys: N-API call failed");
      return NULL;
    }
  }
  free(buffer);
  nl_close(&sock);
  return result;
}

napi_status floatip_sys_init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"setRealtime", NULL, js_set_realtime, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setRealtimeCpuLimit", NULL, js_set_realtime_cpu_limit, NULL, NULL, NULL, napi_enumerable,
       NULL},
      {"lockMemory", NULL, js_lock_memory, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dieWithParent", NULL, js_die_with_parent, NULL, NULL, NULL, napi_enumerable, NULL},
      {"execProgram", NULL, js_exec_program, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lockExclusive", NULL, js_lock_exclusive, NULL, NULL, NULL, napi_enumerable, NULL},
      {"listenFreebind", NULL, js_listen_freebind, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sdNotify", NULL, js_sd_notify, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lockMappedFiles", NULL, js_lock_mapped_files, NULL, NULL, NULL, napi_enumerable, NULL},
      {"currentScheduling", NULL, js_current_scheduling, NULL, NULL, NULL, napi_enumerable, NULL},
      {"listAddresses", NULL, js_list_addresses, NULL, NULL, NULL, napi_enumerable, NULL},
      {"renewAddressLifetimes", NULL, js_renew_address_lifetimes, NULL, NULL, NULL,
       napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof properties / sizeof properties[0],
                                properties);
}
