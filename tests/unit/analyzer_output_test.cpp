// `-o PATH` output (AtomicOutput): regular files replaced atomically with a sane mode, everything
// else written through and left what it was.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "analyzer/analysis.h"
#include "tests/unit/analyzer_test_util.h"

namespace httptrace::testing {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

bool write_out(const std::string& path, const std::string& text, std::string* err = nullptr) {
  AtomicOutput out;
  if (!out.open(path)) {
    if (err) *err = out.error();
    return false;
  }
  std::fputs(text.c_str(), out.file());
  const bool ok = out.commit();
  if (err) *err = out.error();
  return ok;
}

mode_t mode_of(const std::string& path) {
  struct stat st{};
  lstat(path.c_str(), &st);
  return st.st_mode;
}

struct Umask {
  mode_t old;
  explicit Umask(mode_t m) : old(umask(m)) {}
  ~Umask() { umask(old); }
};

TEST(Output, ANewFileIsTheTracesOwn0600LessTheUmask) {
  TempDir dir;
  for (auto [mask, want] : {std::pair<mode_t, mode_t>{022, 0600}, {077, 0600}, {0266, 0400}}) {
    Umask u(mask);
    const std::string p = dir.file("out" + std::to_string(mask) + ".json");
    ASSERT_TRUE(write_out(p, "{}\n"));
    EXPECT_EQ(mode_of(p) & 07777, want) << std::oct << mask;
    EXPECT_EQ(slurp(p), "{}\n");
  }
}

TEST(Output, AnExistingRegularFileIsReplacedAtomicallyKeepingItsMode) {
  TempDir dir;
  const std::string p = dir.file("report.json");
  TraceBuilder::write_file(p, "old contents that are longer\n");
  chmod(p.c_str(), 0640);
  struct stat before{};
  stat(p.c_str(), &before);
  ASSERT_TRUE(write_out(p, "new\n"));
  struct stat after{};
  stat(p.c_str(), &after);
  EXPECT_EQ(slurp(p), "new\n");
  EXPECT_EQ(after.st_mode & 07777, 0640u);
  EXPECT_NE(after.st_ino, before.st_ino);  // renamed into place, not rewritten
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename(), "report.json");  // no temp left behind
}

TEST(Output, AFifoIsWrittenThroughNotReplaced) {
  TempDir dir;
  const std::string p = dir.file("pipe");
  ASSERT_EQ(mkfifo(p.c_str(), 0600), 0);
  const int r = open(p.c_str(), O_RDONLY | O_NONBLOCK);  // a reader is there: the write end opens
  ASSERT_GE(r, 0);
  ASSERT_TRUE(write_out(p, "through the pipe\n"));
  char buf[64] = {};
  const ssize_t n = read(r, buf, sizeof buf - 1);
  close(r);
  EXPECT_EQ(std::string(buf, n > 0 ? size_t(n) : 0), "through the pipe\n");
  EXPECT_TRUE(S_ISFIFO(mode_of(p)));
}

TEST(Output, ACharacterDeviceIsWrittenThroughNotReplaced) {
  TempDir dir;
  // As root, a private node for the null device: the test must not risk the system's /dev/null.
  std::string p = "/dev/null";
  if (geteuid() == 0) {
    p = dir.file("null");
    ASSERT_EQ(mknod(p.c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  }
  ASSERT_TRUE(write_out(p, "gone\n"));
  EXPECT_TRUE(S_ISCHR(mode_of(p)));
}

TEST(Output, ASymlinkToAFileReplacesTheTargetAndStaysALink) {
  TempDir dir;
  const std::string target = dir.file("real.json"), link = dir.file("link.json");
  TraceBuilder::write_file(target, "old\n");
  chmod(target.c_str(), 0644);
  ASSERT_EQ(symlink("real.json", link.c_str()), 0);
  ASSERT_TRUE(write_out(link, "new\n"));
  EXPECT_TRUE(S_ISLNK(mode_of(link)));
  EXPECT_EQ(slurp(target), "new\n");
  EXPECT_EQ(mode_of(target) & 07777, 0644u);
}

TEST(Output, ASymlinkToAPipeIsWrittenThrough) {
  // /dev/stdout is a link to /proc/self/fd/1, which may be a pipe: replacing it would be wrong.
  TempDir dir;
  const std::string fifo = dir.file("pipe"), link = dir.file("stdout");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  ASSERT_EQ(symlink(fifo.c_str(), link.c_str()), 0);
  const int r = open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  ASSERT_GE(r, 0);
  ASSERT_TRUE(write_out(link, "x\n"));
  char buf[8] = {};
  EXPECT_EQ(read(r, buf, sizeof buf), 2);
  close(r);
  EXPECT_TRUE(S_ISLNK(mode_of(link)));
  EXPECT_TRUE(S_ISFIFO(mode_of(fifo)));
}

TEST(Output, ADirectoryIsAnErrorNamingIt) {
  TempDir dir;
  std::string err;
  EXPECT_FALSE(write_out(dir.path(), "x", &err));
  EXPECT_EQ(err, dir.path() + ": cannot write: Is a directory");
}

TEST(Output, AFailedWriteThroughIsReported) {
  TempDir dir;
  std::string p = "/dev/full";
  if (geteuid() == 0) {
    p = dir.file("full");
    ASSERT_EQ(mknod(p.c_str(), S_IFCHR | 0666, makedev(1, 7)), 0);
  }
  std::string err;
  EXPECT_FALSE(write_out(p, std::string(100000, 'x'), &err));
  EXPECT_NE(err.find(p + ": write failed: No space left on device"), std::string::npos) << err;
  EXPECT_TRUE(S_ISCHR(mode_of(p)));
}

}  // namespace
}  // namespace httptrace::testing
