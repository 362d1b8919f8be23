/*
 * floatip-supervisor: the small process `floatip agent` becomes (by execve) when it runs
 * supervised. It starts the agent (the control plane, which starts the services process) as a
 * child and, the moment that child dies for any reason (SIGKILL included), removes the node's
 * VIPs from their interfaces with rtnetlink and starts a new agent after a back-off. It is C
 * so that the layer that must outlive every agent bug costs about 1 MB, not a second Node.js
 * runtime (about 50 MB resident).
 *
 * usage: floatip-supervisor --node ID --vips FILE --log human|json -- AGENT_ARGV...
 *
 * FILE lists the VIPs to remove, one per line: "INTERFACE ADDRESS/PREFIX" (IPv4 or IPv6);
 * blank lines and lines starting with '#' are skipped. A line
 * "notify TIMEOUT_MS STYLE PRIORITY CLUSTER COMMAND" names the notify hook, which this process
 * runs when the agent dies, after the removal (the agent cannot report its own death):
 * `COMMAND agent-died REASON` with FLOATIP_EVENT, FLOATIP_NODE, FLOATIP_CLUSTER, FLOATIP_REASON
 * and FLOATIP_VIPS (the addresses it removed), or in the keepalived style
 * `COMMAND INSTANCE ADDRESS FAULT PRIORITY` for each removed address; killed after TIMEOUT_MS. The agent rewrites it at every start
 * (environment FLOATIP_SUPERVISOR_VIPS), so it always matches the configuration the dead
 * agent ran with. It is read when the agent dies, not cached.
 *
 * Signals: SIGTERM and SIGINT are forwarded and make this process exit once the agent has
 * exited (0 when the agent exited 0); SIGHUP is forwarded (configuration reload). Restarts:
 * back-off min(5 s, 0.5 s x restarts in the last minute), less the time the agent already
 * ran (at most 0.5 s), at least 0.1 s; more than 5 deaths in a minute and it gives up (exit 1).
 *
 * Logs go to standard error in the agent's formats: one JSON object per line, or the short
 * human line ("HH:MM:SS.uuuuuu LEVEL message key=value ...", microseconds), each prefixed
 * with its syslog priority ("<4>") when standard error is the journal (JOURNAL_STREAM).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char* node_id = "";
static bool human = false;
/* Standard error is the journal (JOURNAL_STREAM): lines start with their syslog priority. */
static bool journal = false;

/* Whether JOURNAL_STREAM ("DEVICE:INODE") names the stream on standard error. */
static bool journal_stream(void) {
  const char* value = getenv("JOURNAL_STREAM");
  unsigned long long device, inode;
  struct stat st;
  if (value == NULL || sscanf(value, "%llu:%llu", &device, &inode) != 2) return false;
  if (fstat(STDERR_FILENO, &st) != 0) return false;
  return (unsigned long long)st.st_dev == device && (unsigned long long)st.st_ino == inode;
}

/* syslog priority of a level: error 3, warn 4, info 6, debug 7. */
static int priority_of(const char* level) {
  if (strcmp(level, "error") == 0) return 3;
  if (strcmp(level, "warn") == 0) return 4;
  if (strcmp(level, "debug") == 0) return 7;
  return 6;
}

/* ---------- logging ---------- */

/* Appends `value` to `out` as a JSON string (quotes included). */
static void json_string(char* out, size_t size, const char* value) {
  size_t n = strlen(out);
  if (n + 1 < size) out[n++] = '"';
  for (const char* p = value; *p != '\0' && n + 7 < size; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '"' || c == '\\') {
      out[n++] = '\\';
      out[n++] = (char)c;
    } else if (c < 0x20) {
      n += (size_t)snprintf(out + n, size - n, "\\u%04x", c);
    } else {
      out[n++] = (char)c;
    }
  }
  if (n + 1 < size) out[n++] = '"';
  out[n] = '\0';
}

/*
 * One log line. `fields` are pairs of key and already-encoded value: a JSON literal
 * (number, null) when `raw` says so, otherwise a string.
 */
struct field {
  const char* key;
  const char* value;
  bool raw;
};

static void log_line(const char* level, const char* message, const struct field* fields,
                     size_t count) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char line[4096];
  int at = journal ? snprintf(line, sizeof line, "<%d>", priority_of(level)) : 0;
  if (human) {
    char upper[8] = {0};
    for (size_t i = 0; i < 5 && level[i] != '\0'; i++) upper[i] = (char)(level[i] - 32);
    snprintf(line + at, sizeof line - at, "%02d:%02d:%02d.%06d %-5s %s node=%s", tm.tm_hour, tm.tm_min,
             tm.tm_sec, (int)tv.tv_usec, upper, message, node_id);
    for (size_t i = 0; i < count; i++) {
      size_t n = strlen(line);
      snprintf(line + n, sizeof line - n, " %s=%s", fields[i].key, fields[i].value);
    }
  } else {
    snprintf(line + at, sizeof line - at,
             "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%06dZ\",\"level\":\"%s\",\"msg\":",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)tv.tv_usec, level);
    json_string(line, sizeof line, message);
    strncat(line, ",\"node\":", sizeof line - strlen(line) - 1);
    json_string(line, sizeof line, node_id);
    for (size_t i = 0; i < count; i++) {
      strncat(line, ",", sizeof line - strlen(line) - 1);
      json_string(line, sizeof line, fields[i].key);
      strncat(line, ":", sizeof line - strlen(line) - 1);
      if (fields[i].raw) {
        strncat(line, fields[i].value, sizeof line - strlen(line) - 1);
      } else {
        json_string(line, sizeof line, fields[i].value);
      }
    }
    strncat(line, "}", sizeof line - strlen(line) - 1);
  }
  strncat(line, "\n", sizeof line - strlen(line) - 1);
  /* One write per line: lines of concurrent writers to the same pipe do not interleave. */
  ssize_t ignored = write(STDERR_FILENO, line, strlen(line));
  (void)ignored;
}

static const char* signal_name(int sig) {
  switch (sig) {
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGILL: return "SIGILL";
    case SIGTRAP: return "SIGTRAP";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGUSR1: return "SIGUSR1";
    case SIGSEGV: return "SIGSEGV";
    case SIGUSR2: return "SIGUSR2";
    case SIGPIPE: return "SIGPIPE";
    case SIGALRM: return "SIGALRM";
    case SIGTERM: return "SIGTERM";
    case SIGXCPU: return "SIGXCPU";
    case SIGXFSZ: return "SIGXFSZ";
    case SIGSYS: return "SIGSYS";
    default: return "SIGUNKNOWN";
  }
}

/* ---------- removing the VIPs (RTM_DELADDR) ---------- */

/* Sends one RTM_DELADDR and reads the kernel's answer; 0, or the errno. */
static int delete_address(int fd, unsigned seq, int ifindex, int family, const void* address,
                          size_t length, int prefix) {
  struct {
    struct nlmsghdr header;
    struct ifaddrmsg message;
    char attributes[64];
  } request;
  memset(&request, 0, sizeof request);
  request.header.nlmsg_type = RTM_DELADDR;
  request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  request.header.nlmsg_seq = seq;
  request.message.ifa_family = (unsigned char)family;
  request.message.ifa_prefixlen = (unsigned char)prefix;
  request.message.ifa_index = (unsigned)ifindex;
  struct rtattr* attribute = (struct rtattr*)request.attributes;
  attribute->rta_type = IFA_LOCAL;
  attribute->rta_len = (unsigned short)RTA_LENGTH(length);
  memcpy(RTA_DATA(attribute), address, length);
  size_t used = RTA_ALIGN(attribute->rta_len);
  attribute = (struct rtattr*)(request.attributes + used);
  attribute->rta_type = IFA_ADDRESS;
  attribute->rta_len = (unsigned short)RTA_LENGTH(length);
  memcpy(RTA_DATA(attribute), address, length);
  used += RTA_ALIGN(attribute->rta_len);
  request.header.nlmsg_len = (unsigned)(NLMSG_LENGTH(sizeof(struct ifaddrmsg)) + used);
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  if (sendto(fd, &request, request.header.nlmsg_len, 0, (struct sockaddr*)&kernel,
             sizeof kernel) < 0) {
    return errno;
  }
  char buffer[4096];
  for (;;) {
    ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN ? ETIMEDOUT : errno;
    }
    for (struct nlmsghdr* h = (struct nlmsghdr*)buffer; NLMSG_OK(h, (unsigned)n);
         h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != seq) continue;
      if (h->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr* error = (struct nlmsgerr*)NLMSG_DATA(h);
        return -error->error;
      }
    }
  }
}

/* The notify hook named in the VIP list (see the top of this file). */
struct hook {
  bool set;
  long timeout_ms;
  char style[16];
  char priority[16];
  char cluster[256];
  char command[1024];
};

/*
 * Removes every VIP listed in `path`; returns how many removals failed. The addresses it
 * really removed go to `removed` (space-separated), the notify hook line to `hook`.
 */
static int remove_vips(const char* path, char* removed, size_t removed_size, struct hook* hook) {
  removed[0] = '\0';
  hook->set = false;
  FILE* file = fopen(path, "r");
  if (file == NULL) {
    char detail[512];
    snprintf(detail, sizeof detail, "%s: %s", path, strerror(errno));
    struct field fields[] = {{"error", detail, false}};
    log_line("error", "cannot read the list of VIPs to remove", fields, 1);
    return 1;
  }
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) {
    struct field fields[] = {{"error", strerror(errno), false}};
    log_line("error", "cannot open a netlink socket to remove the VIPs", fields, 1);
    fclose(file);
    return 1;
  }
  struct timeval timeout = {.tv_sec = 2, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  int failures = 0;
  unsigned seq = (unsigned)time(NULL);
  char line[1536];
  while (fgets(line, sizeof line, file) != NULL) {
    char ifname[IF_NAMESIZE + 1];
    char cidr[128];
    if (strncmp(line, "notify ", 7) == 0) {
      int used = 0;
      if (sscanf(line + 7, "%ld %15s %15s %255s %n", &hook->timeout_ms, hook->style, hook->priority,
                 hook->cluster, &used) == 4 &&
          used > 0) {
        snprintf(hook->command, sizeof hook->command, "%s", line + 7 + used);
        hook->command[strcspn(hook->command, "\r\n")] = '\0';
        hook->set = hook->command[0] != '\0' && hook->timeout_ms > 0;
      }
      continue;
    }
    if (line[0] == '#' || sscanf(line, "%16s %127s", ifname, cidr) != 2) continue;
    char* slash = strchr(cidr, '/');
    int prefix = -1;
    if (slash != NULL) {
      *slash = '\0';
      prefix = atoi(slash + 1);
    }
    unsigned char address[16];
    int family = strchr(cidr, ':') != NULL ? AF_INET6 : AF_INET;
    size_t length = family == AF_INET6 ? 16 : 4;
    int ifindex = (int)if_nametoindex(ifname);
    int error = 0;
    if (inet_pton(family, cidr, address) != 1 || prefix < 0 ||
        prefix > (family == AF_INET6 ? 128 : 32)) {
      error = EINVAL;
    } else if (ifindex == 0) {
      error = ENODEV;
    } else {
      error = delete_address(fd, ++seq, ifindex, family, address, length, prefix);
    }
    if (error == 0) {
      size_t n = strlen(removed);
      if (n + strlen(cidr) + 2 < removed_size) {
        snprintf(removed + n, removed_size - n, "%s%s", n > 0 ? " " : "", cidr);
      }
      continue;
    }
    /* Not there (already removed, never added): nothing to do. */
    if (error == EADDRNOTAVAIL || error == ENOENT || error == ESRCH) continue;
    failures += 1;
    char vip[160];
    snprintf(vip, sizeof vip, "%s/%d", cidr, prefix);
    struct field fields[] = {{"vip", vip, false},
                             {"interface", ifname, false},
                             {"error", strerror(error), false}};
    log_line("error", "cannot remove a VIP", fields, 3);
  }
  close(fd);
  fclose(file);
  return failures;
}

/* ---------- the notify hook on the agent's death ---------- */

static double monotonic_ms(void);

/* Runs `argv` with the hook's environment; kills it after the hook's timeout. */
static void run_hook_once(const struct hook* hook, char* const argv[], const char* reason,
                          const char* vips, const sigset_t* blocked) {
  pid_t pid = fork();
  if (pid < 0) {
    struct field fields[] = {{"error", strerror(errno), false}};
    log_line("warn", "cannot run the notify hook for the agent's death", fields, 1);
    return;
  }
  if (pid == 0) {
    sigprocmask(SIG_UNBLOCK, blocked, NULL);
    setenv("FLOATIP_EVENT", "agent-died", 1);
    setenv("FLOATIP_NODE", node_id, 1);
    setenv("FLOATIP_CLUSTER", hook->cluster, 1);
    setenv("FLOATIP_REASON", reason, 1);
    setenv("FLOATIP_VIPS", vips, 1);
    execv(hook->command, argv);
    _exit(127);
  }
  double deadline = monotonic_ms() + (double)hook->timeout_ms;
  int status = 0;
  for (;;) {
    pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) return;
    if (monotonic_ms() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      struct field fields[] = {{"command", hook->command, false}};
      log_line("warn", "the notify hook for the agent's death timed out; killed it", fields, 1);
      return;
    }
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    char code[24];
    snprintf(code, sizeof code, "%d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    struct field fields[] = {{"command", hook->command, false}, {"exitCode", code, true}};
    log_line("warn", "the notify hook for the agent's death failed", fields, 2);
  }
}

/* The agent cannot report its own death: this process does, after removing its VIPs. */
static void run_death_hook(const struct hook* hook, const char* reason, char* vips,
                           const sigset_t* blocked) {
  if (!hook->set) return;
  if (strcmp(hook->style, "keepalived") == 0) {
    /* keepalived scripts learn, per VRRP instance (here per VIP), that this node faulted. */
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", vips);
    char* saved = NULL;
    for (char* vip = strtok_r(copy, " ", &saved); vip != NULL; vip = strtok_r(NULL, " ", &saved)) {
      char* argv[] = {(char*)hook->command, "INSTANCE", vip, "FAULT", (char*)hook->priority, NULL};
      run_hook_once(hook, argv, reason, vips, blocked);
    }
    return;
  }
  char* argv[] = {(char*)hook->command, "agent-died", (char*)reason, NULL};
  run_hook_once(hook, argv, reason, vips, blocked);
}

/* ---------- the supervision loop ---------- */

static double monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static pid_t child = 0;
static bool stopping = false;

/*
 * Waits up to `ms` (forever when negative) for a signal of `set`. SIGTERM/SIGINT/SIGHUP are
 * forwarded to the agent (or, with no agent, SIGTERM/SIGINT end the wait with `stopping` set);
 * returns true when SIGCHLD arrived.
 */
static bool wait_signal(const sigset_t* set, double ms) {
  double until = ms < 0 ? 0 : monotonic_ms() + ms;
  for (;;) {
    siginfo_t info;
    int sig;
    if (ms < 0) {
      sig = sigwaitinfo(set, &info);
    } else {
      double left = until - monotonic_ms();
      if (left <= 0) return false;
      struct timespec timeout = {.tv_sec = (time_t)(left / 1000),
                                 .tv_nsec = (long)((left - (double)(long)(left / 1000) * 1000) * 1e6)};
      sig = sigtimedwait(set, &info, &timeout);
    }
    if (sig < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return false;
      return false;
    }
    if (sig == SIGCHLD) return true;
    if (sig != SIGHUP) stopping = true;
    if (child > 0) {
      kill(child, sig);
    } else if (stopping) {
      return false;
    }
  }
}

static int usage(void) {
  fprintf(stderr,
          "usage: floatip-supervisor --node ID --vips FILE --log human|json -- AGENT_ARGV...\n");
  return 2;
}

int main(int argc, char** argv) {
  const char* vips = NULL;
  int first = -1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) {
      first = i + 1;
      break;
    }
    if (i + 1 >= argc) return usage();
    if (strcmp(argv[i], "--node") == 0) {
      node_id = argv[++i];
    } else if (strcmp(argv[i], "--vips") == 0) {
      vips = argv[++i];
    } else if (strcmp(argv[i], "--log") == 0) {
      human = strcmp(argv[++i], "human") == 0;
    } else {
      return usage();
    }
  }
  if (vips == NULL || first < 0 || first >= argc) return usage();
  journal = journal_stream();

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigprocmask(SIG_BLOCK, &set, NULL);
  if (setenv("FLOATIP_SUPERVISOR_VIPS", vips, 1) != 0) return 1;

  double restarts[8];
  int restart_count = 0;
  for (;;) {
    double started = monotonic_ms();
    child = fork();
    if (child < 0) {
      struct field fields[] = {{"error", strerror(errno), false}};
      log_line("error", "cannot start the agent", fields, 1);
      return 1;
    }
    if (child == 0) {
      sigprocmask(SIG_UNBLOCK, &set, NULL);
      execv(argv[first], argv + first);
      char detail[512];
      snprintf(detail, sizeof detail, "%s: %s", argv[first], strerror(errno));
      struct field fields[] = {{"error", detail, false}};
      log_line("error", "cannot run the agent", fields, 1);
      _exit(127);
    }
    char pid_text[24];
    snprintf(pid_text, sizeof pid_text, "%d", (int)child);
    struct field started_fields[] = {{"pid", pid_text, true}};
    log_line("info", "supervisor started the agent", started_fields, 1);

    int status = 0;
    for (;;) {
      wait_signal(&set, -1);
      pid_t done = waitpid(child, &status, WNOHANG);
      if (done == child) break;
    }
    child = 0;
    bool exited = WIFEXITED(status);
    int code = exited ? WEXITSTATUS(status) : -1;
    if (stopping && exited && code == 0) return 0;

    char code_text[24];
    snprintf(code_text, sizeof code_text, "%d", code);
    struct field died[3];
    size_t count = 0;
    died[count++] = (struct field){"exitCode", exited ? code_text : "null", true};
    if (WIFSIGNALED(status)) {
      died[count++] = (struct field){"signal", signal_name(WTERMSIG(status)), false};
      if (WTERMSIG(status) == SIGXCPU) {
        died[count++] = (struct field){
            "why", "its realtime thread ran past RLIMIT_RTTIME without blocking (a busy loop)",
            false};
      }
    }
    log_line("error", "the agent died; removing its VIPs at once", died, count);
    char removed[4096];
    struct hook hook;
    remove_vips(vips, removed, sizeof removed, &hook);
    char reason[64];
    if (WIFSIGNALED(status)) {
      snprintf(reason, sizeof reason, "signal %s", signal_name(WTERMSIG(status)));
    } else {
      snprintf(reason, sizeof reason, "exit %d", code);
    }
    run_death_hook(&hook, reason, removed, &set);
    if (stopping) return 1;

    double now = monotonic_ms();
    int kept = 0;
    for (int i = 0; i < restart_count; i++) {
      if (restarts[i] >= now - 60000) restarts[kept++] = restarts[i];
    }
    restart_count = kept;
    if (restart_count >= 5) {
      log_line("error", "the agent died more than 5 times in a minute; giving up", NULL, 0);
      return 1;
    }
    restarts[restart_count++] = now;
    double ran = now - started;
    double backoff = (restart_count * 500.0 < 5000 ? restart_count * 500.0 : 5000) -
                     (ran < 500 ? ran : 500);
    wait_signal(&set, backoff < 100 ? 100 : backoff);
    if (stopping) return 0; /* stopped while no agent ran: nothing left to hand over */
  }
}
