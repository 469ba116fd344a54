#include "distributed/rendezvous.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "core/error.h"

namespace attn {

namespace {

constexpr uint32_t kMaxFrame = 64u << 20;  // small blobs only; anything bigger is garbage
constexpr char kMagic[4] = {'A', 'T', 'R', 'V'};

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Waits until fd is ready for `events` or the deadline passes (false).
bool wait_fd(int fd, short events, double deadline) {
  for (;;) {
    const double left = deadline - now_s();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::min(left * 1000.0 + 1, 1e9)));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return true;  // let the following call report the error
  }
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

void put_u32(Blob& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
uint32_t get_u32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

// Outcomes of low-level transfers; callers turn them into messages naming the peer.
enum class Io { Ok, Closed, Timeout, Failed };

Io write_all(int fd, const uint8_t* p, size_t n, double deadline) {
  while (n > 0) {
    if (!wait_fd(fd, POLLOUT, deadline)) return Io::Timeout;
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return errno == EPIPE || errno == ECONNRESET ? Io::Closed : Io::Failed;
    }
    p += w, n -= static_cast<size_t>(w);
  }
  return Io::Ok;
}

Io read_all(int fd, uint8_t* p, size_t n, double deadline) {
  while (n > 0) {
    if (!wait_fd(fd, POLLIN, deadline)) return Io::Timeout;
    const ssize_t r = ::recv(fd, p, n, 0);
    if (r == 0) return Io::Closed;
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return errno == ECONNRESET ? Io::Closed : Io::Failed;
    }
    p += r, n -= static_cast<size_t>(r);
  }
  return Io::Ok;
}

Io write_frame(int fd, const Blob& b, double deadline) {
  Blob f;
  f.reserve(4 + b.size());
  put_u32(f, static_cast<uint32_t>(b.size()));
  f.insert(f.end(), b.begin(), b.end());
  return write_all(fd, f.data(), f.size(), deadline);
}

Io read_frame(int fd, Blob& out, double deadline) {
  uint8_t h[4];
  if (Io r = read_all(fd, h, 4, deadline); r != Io::Ok) return r;
  const uint32_t n = get_u32(h);
  if (n > kMaxFrame) return Io::Failed;
  out.resize(n);
  return read_all(fd, out.data(), n, deadline);
}

const char* io_problem(Io r) {
  switch (r) {
    case Io::Closed: return "closed the connection";
    case Io::Timeout: return "did not answer in time";
    default: return "sent something that is not a rendezvous message";
  }
}

void set_blocking(int fd, bool blocking) {
  const int fl = ::fcntl(fd, F_GETFL, 0);
  ::fcntl(fd, F_SETFL, blocking ? (fl & ~O_NONBLOCK) : (fl | O_NONBLOCK));
}

// One non-blocking connect attempt to any address of host:port, bounded by the deadline.
int try_connect(const std::string& host, int port, double deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) return -1;
  int fd = -1;
  for (addrinfo* ai = res; ai && fd < 0; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    set_blocking(fd, false);
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      int err = ETIMEDOUT;
      if (wait_fd(fd, POLLOUT, deadline)) {
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      }
      rc = err == 0 ? 0 : -1;
    }
    if (rc != 0) close_fd(fd);
  }
  ::freeaddrinfo(res);
  if (fd >= 0) {
    set_blocking(fd, true);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return fd;
}

// A socket listening on every interface at `port` (dual-stack where IPv6 exists).
int listen_any(int port, int backlog, int& bound_port) {
  int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1, zero = 0;
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (fd >= 0) {
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_any;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof(sockaddr_in6);
  } else {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("rendezvous: cannot create a socket: {}", std::strerror(errno));
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_ANY);
    a->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof(sockaddr_in);
  }
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, backlog) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    fail("rendezvous: rank 0 cannot listen on port {}: {} (is another job using MASTER_PORT?)", port, why);
  }
  sockaddr_storage got{};
  socklen_t glen = sizeof got;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&got), &glen);
  bound_port = got.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&got)->sin6_port)
                                         : ntohs(reinterpret_cast<sockaddr_in*>(&got)->sin_port);
  return fd;
}

}  // namespace

Rendezvous::Rendezvous(const DistEnv& env, double timeout_s) : env_(env), timeout_s_(timeout_s), port_(env.master_port) {
  ATTN_CHECK(env.world_size >= 1 && env.rank >= 0 && env.rank < env.world_size,
             "rendezvous: rank {} is out of range for world size {}", env.rank, env.world_size);
  ATTN_CHECK(timeout_s > 0, "rendezvous: timeout must be > 0 s (got {})", timeout_s);
  if (env.rank == 0 && env.world_size > 1) listen_fd_ = listen_any(env.master_port, env.world_size, port_);
}

Rendezvous::~Rendezvous() {
  close_fd(listen_fd_);
  close_fd(master_fd_);
  for (int& fd : peer_fds_) close_fd(fd);
}

double Rendezvous::remaining() const { return deadline_ - now_s(); }

void Rendezvous::send_frame(int fd, const Blob& b, const char* what) {
  const Io r = write_frame(fd, b, deadline_);
  if (r == Io::Ok) return;
  const int peer = env_.rank == 0 ? int(std::find(peer_fds_.begin(), peer_fds_.end(), fd) - peer_fds_.begin()) : 0;
  fail("rendezvous: rank {} {} during {} (timeout {} s)", peer, io_problem(r), what, timeout_s_);
}

Blob Rendezvous::recv_frame(int fd, const char* what, int peer) {
  Blob b;
  const Io r = read_frame(fd, b, deadline_);
  if (r != Io::Ok) fail("rendezvous: rank {} {} during {} (timeout {} s)", peer, io_problem(r), what, timeout_s_);
  return b;
}

void Rendezvous::connect() {
  ATTN_CHECK(!connected_, "rendezvous: connect() called twice");
  deadline_ = now_s() + timeout_s_;
  const int world = env_.world_size;
  if (world == 1) {
    connected_ = true;
    return;
  }
  if (env_.rank == 0) {
    peer_fds_.assign(world, -1);
    int joined = 1;
    std::string refused;
    while (joined < world) {
      if (!wait_fd(listen_fd_, POLLIN, deadline_)) {
        std::string missing;
        for (int r = 1; r < world; ++r)
          if (peer_fds_[r] < 0) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
        fail("rendezvous: rank 0 waited {} s on port {} for rank(s) {} of world size {}{}", timeout_s_, port_,
             missing, world, refused.empty() ? "" : " (refused: " + refused + ")");
      }
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      Blob hello;
      // A rank sends its hello right after connecting; a silent peer must not hold up the others.
      if (read_frame(fd, hello, std::min(deadline_, now_s() + 10.0)) != Io::Ok || hello.size() != 12 ||
          std::memcmp(hello.data(), kMagic, 4) != 0) {
        close_fd(fd);  // a stray connection (port scanner, health check): not ours
        continue;
      }
      const int r = static_cast<int>(get_u32(hello.data() + 4)), w = static_cast<int>(get_u32(hello.data() + 8));
      std::string why;
      if (w != world)
        why = fmt::format("rank {} says world size {}, rank 0 has {}", r, w, world);
      else if (r < 1 || r >= world)
        why = fmt::format("rank {} is out of range 1..{}", r, world - 1);
      else if (peer_fds_[r] >= 0)
        why = fmt::format("rank {} joined twice", r);
      Blob reply(1 + why.size());  // status byte (0 = accepted), then the reason
      reply[0] = why.empty() ? 0 : 1;
      std::memcpy(reply.data() + 1, why.data(), why.size());
      write_frame(fd, reply, deadline_);
      if (!why.empty()) {
        refused += (refused.empty() ? "" : "; ") + why;
        close_fd(fd);
        continue;
      }
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      peer_fds_[r] = fd;
      ++joined;
    }
    close_fd(listen_fd_);
    connected_ = true;
    return;
  }
  // Other ranks: rank 0 may not be listening yet, so retry until the deadline.
  const std::string where = fmt::format("{}:{}", env_.master_addr, env_.master_port);
  while (master_fd_ < 0) {
    master_fd_ = try_connect(env_.master_addr, env_.master_port, deadline_);
    if (master_fd_ >= 0) break;
    if (remaining() <= 0)
      fail("rendezvous: could not reach {} within {} s (is rank 0 running?)", where, timeout_s_);
    std::this_thread::sleep_for(std::chrono::duration<double>(std::min(0.1, std::max(0.0, remaining()))));
  }
  Blob hello(kMagic, kMagic + 4);
  put_u32(hello, static_cast<uint32_t>(env_.rank));
  put_u32(hello, static_cast<uint32_t>(world));
  Blob reply;
  if (write_frame(master_fd_, hello, deadline_) != Io::Ok || read_frame(master_fd_, reply, deadline_) != Io::Ok ||
      reply.empty())
    fail("rendezvous: {} accepted rank {}'s connection but did not answer within {} s (is it rank 0 of this job?)",
         where, env_.rank, timeout_s_);
  if (reply[0] != 0) fail("rendezvous: rank 0 at {} refused: {}", where, std::string(reply.begin() + 1, reply.end()));
  connected_ = true;
}

Blob Rendezvous::broadcast(const Blob& blob) {
  ATTN_CHECK(connected_, "rendezvous: broadcast before connect()");
  deadline_ = now_s() + timeout_s_;
  if (env_.rank == 0) {
    for (int r = 1; r < env_.world_size; ++r) send_frame(peer_fds_[r], blob, "broadcast");
    return blob;
  }
  return recv_frame(master_fd_, "broadcast", 0);
}

std::vector<Blob> Rendezvous::all_gather(const Blob& mine) {
  ATTN_CHECK(connected_, "rendezvous: all_gather before connect()");
  deadline_ = now_s() + timeout_s_;
  const int world = env_.world_size;
  std::vector<Blob> all(world);
  if (env_.rank == 0) {
    all[0] = mine;
    for (int r = 1; r < world; ++r) all[r] = recv_frame(peer_fds_[r], "all_gather", r);
    Blob packed;
    for (const Blob& b : all) {
      put_u32(packed, static_cast<uint32_t>(b.size()));
      packed.insert(packed.end(), b.begin(), b.end());
    }
    for (int r = 1; r < world; ++r) send_frame(peer_fds_[r], packed, "all_gather");
    return all;
  }
  send_frame(master_fd_, mine, "all_gather");
  const Blob packed = recv_frame(master_fd_, "all_gather", 0);
  size_t pos = 0;
  for (int r = 0; r < world; ++r) {
    ATTN_CHECK(pos + 4 <= packed.size(), "rendezvous: all_gather reply from rank 0 is truncated");
    const uint32_t n = get_u32(packed.data() + pos);
    pos += 4;
    ATTN_CHECK(pos + n <= packed.size(), "rendezvous: all_gather reply from rank 0 is truncated");
    all[r].assign(packed.begin() + pos, packed.begin() + pos + n);
    pos += n;
  }
  return all;
}

void require_same_on_all_ranks(Rendezvous& rv, const std::string& what, const std::string& value) {
  const std::vector<Blob> all = rv.all_gather(Blob(value.begin(), value.end()));
  auto text = [](const Blob& b) {
    std::string s(b.begin(), b.end());
    return s.size() > 40 ? s.substr(0, 37) + "..." : s;
  };
  for (size_t r = 1; r < all.size(); ++r)
    if (all[r] != all[0])
      fail("{} differs between ranks: rank 0 has '{}', rank {} has '{}'", what, text(all[0]), r, text(all[r]));
}

}  // namespace attn
