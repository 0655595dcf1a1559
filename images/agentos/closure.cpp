#include "images/agentos/closure.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <functional>
#include <set>
#include <sstream>

namespace lab::images {
namespace {

// Runs `ldd binary` and returns its stdout; ldd's exit status 1 with "not a dynamic executable"
// means a static binary.
Result<std::string> run_ldd(const std::filesystem::path& binary, bool& is_static) {
  std::array<int, 2> fds{};
  if (::pipe(fds.data()) != 0) {
    return errno_error("pipe");
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    return errno_error("fork");
  }
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::dup2(fds[1], STDERR_FILENO);
    ::close(fds[0]);
    ::close(fds[1]);
    ::execlp("ldd", "ldd", binary.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string out;
  std::array<char, 4096> buf{};
  for (ssize_t n = 0; (n = ::read(fds[0], buf.data(), buf.size())) != 0;) {
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      break;
    }
    out.append(buf.data(), static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  is_static = out.find("not a dynamic executable") != std::string::npos ||
              out.find("statically linked") != std::string::npos;
  if (!is_static && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
    return Error(ImageError::command_failed, "ldd " + binary.string() + ": " + out);
  }
  return out;
}

std::string normalize_module_name(std::string name) {
  for (char& c : name) {
    if (c == '-') {
      c = '_';
    }
  }
  return name;
}

}  // namespace

Result<std::vector<std::filesystem::path>> shared_libraries(const std::filesystem::path& binary) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(binary, ec)) {
    return Error(ImageError::bad_input, binary.string() + ": not a file");
  }
  bool is_static = false;
  LAB_TRY_ASSIGN(auto out, run_ldd(binary, is_static));
  std::vector<std::filesystem::path> libs;
  if (is_static) {
    return libs;
  }
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    // "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)", "\t/lib64/ld-linux… (0x…)",
    // "\tlinux-vdso.so.1 (0x…)" (in the kernel, nothing to copy), "\tlibx.so => not found".
    std::string path;
    if (const auto arrow = line.find("=> "); arrow != std::string::npos) {
      path = line.substr(arrow + 3);
      if (path.starts_with("not found")) {
        return Error(ImageError::not_found,
                     binary.string() + " needs a library this machine lacks:" + line);
      }
    } else {
      path = line.substr(line.find_first_not_of(" \t") == std::string::npos
                             ? line.size()
                             : line.find_first_not_of(" \t"));
    }
    path = path.substr(0, path.find(" ("));
    if (path.starts_with("/")) {
      libs.emplace_back(path);
    }
  }
  return libs;
}

std::vector<std::string> module_dependencies(std::string_view bytes) {
  // .modinfo holds NUL-terminated "key=value" strings; "depends=" may be empty.
  std::vector<std::string> deps;
  constexpr std::string_view kKey = "depends=";
  for (std::size_t at = bytes.find(kKey); at != std::string_view::npos;
       at = bytes.find(kKey, at + 1)) {
    if (at != 0 && bytes[at - 1] != '\0') {
      continue;  // part of another string
    }
    const auto end = bytes.find('\0', at);
    const auto list = bytes.substr(at + kKey.size(), end - at - kKey.size());
    std::size_t start = 0;
    while (start < list.size()) {
      auto comma = list.find(',', start);
      if (comma == std::string_view::npos) {
        comma = list.size();
      }
      if (comma > start) {
        deps.push_back(normalize_module_name(std::string(list.substr(start, comma - start))));
      }
      start = comma + 1;
    }
    break;
  }
  return deps;
}

Result<std::vector<std::string>> module_load_order(
    const std::map<std::string, std::string>& modules, const std::vector<std::string>& wanted) {
  std::vector<std::string> order;
  std::set<std::string> done;
  std::set<std::string> visiting;
  std::function<Result<void>(const std::string&, const std::string&)> visit =
      [&](const std::string& name, const std::string& needed_by) -> Result<void> {
    if (done.contains(name)) {
      return {};
    }
    const auto it = modules.find(name);
    if (it == modules.end()) {
      return Error(ImageError::not_found,
                   "kernel module " + name +
                       (needed_by.empty() ? "" : " (needed by " + needed_by + ")") +
                       " is not in the kernel package");
    }
    if (!visiting.insert(name).second) {
      return Error(ImageError::bad_input, "kernel module " + name + " depends on itself");
    }
    for (const auto& dep : module_dependencies(it->second)) {
      LAB_TRY(visit(dep, name));
    }
    visiting.erase(name);
    done.insert(name);
    order.push_back(name);
    return {};
  };
  for (const auto& w : wanted) {
    LAB_TRY(visit(normalize_module_name(w), ""));
  }
  return order;
}

}  // namespace lab::images
