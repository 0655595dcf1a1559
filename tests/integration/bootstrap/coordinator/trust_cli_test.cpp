// The operator CLI of enrolment trust through the real `lab` against a real `lab serve`: named
// operator credentials (expiry, revocation, the audit trail's actor), machines registered for
// network boot, a node's MACs, re-enrolment by `lab node reinstall`, secrets that require TPM
// key protection, and the exit codes of each (2: refused locally, 1: refused by the server).
#include "shared/json/json.hpp"
#include "shared/protocol/protocol.hpp"
#include "tests/integration/bootstrap/coordinator/appliance.hpp"
#include "tests/support/pki.hpp"
#include "tests/support/text.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace lab::tests::coordinator {
namespace {

namespace json = boost::json;

using lab::tests::contains;

// stdout and stderr apart: what a script captures with $(…) is stdout alone.
struct SplitResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

SplitResult lab_split(const Appliance& a, const std::vector<std::string>& args,
                      const std::map<std::string, std::string>& env = {}) {
  static int counter = 0;
  const auto n = std::to_string(++counter);
  const auto out = a.dir() / ("stdout-" + n);
  const auto err = a.dir() / ("stderr-" + n);
  std::string script;
  for (const auto& [k, v] : env)
    script += fmt::format("{}='{}' ", k, v);
  script += "LAB_DATA_DIR='" + a.data_dir().string() + "' '" + lab_binary().string() + "'";
  for (const auto& arg : args)
    script += " '" + arg + "'";
  script += " >'" + out.string() + "' 2>'" + err.string() + "'";
  const auto r = sh(script);
  return {r.exit_code, read_file(out), read_file(err)};
}

// `lab operator add NAME ARGS…`: the credential printed alone on stdout.
std::string add_operator(const Appliance& a, const std::string& name,
                         const std::vector<std::string>& args = {}) {
  std::vector<std::string> argv = {"operator", "add", name};
  argv.insert(argv.end(), args.begin(), args.end());
  const auto r = lab_split(a, argv);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  std::string token = r.out;
  if (!token.empty() && token.back() == '\n')
    token.pop_back();
  EXPECT_TRUE(token.starts_with("lab-op-")) << r.out;
  EXPECT_EQ(token.find_first_of(" \n"), std::string::npos) << r.out;
  EXPECT_TRUE(contains(r.err, "shown only once")) << r.err;
  return token;
}

// A copy: the list is often a temporary.
std::optional<json::object> find_operator(const json::value& list, const std::string& name) {
  for (const auto& op : list.as_array()) {
    if (op.at("name").as_string() == name)
      return op.as_object();
  }
  return std::nullopt;
}

TEST(TrustCli, AnOperatorsCredentialWorksAndTheAuditTrailNamesThem) {
  Appliance a;
  const auto alice = add_operator(a, "alice", {"--ttl", "30d"});

  auto as_alice = a.lab({"group", "set", "web", "--selector", "role=web"}, {{"LAB_TOKEN", alice}});
  EXPECT_EQ(as_alice.exit_code, 0) << as_alice.output;

  auto audit = a.lab_json({"audit", "list", "--limit", "1000"});
  std::map<std::string, std::string> actor_of;
  for (const auto& e : audit.as_array())
    actor_of[std::string(e.at("action").as_string())] = e.at("actor").as_string();
  EXPECT_EQ(actor_of["operator.add"], "admin");
  EXPECT_EQ(actor_of["group.set"], "alice");

  auto list = a.lab_json({"operator", "list"});
  const auto listed = find_operator(list, "alice");
  ASSERT_TRUE(listed) << shared::json::to_string(list);
  EXPECT_EQ(listed->at("state").as_string(), "active");
  EXPECT_EQ(listed->at("created_by").as_string(), "admin");
  EXPECT_GT(listed->at("expires_at").as_int64(), 0);
  ASSERT_TRUE(find_operator(list, "admin"));
  EXPECT_FALSE(contains(shared::json::to_string(list), alice)) << "never listed again";

  auto table = a.lab({"operator", "list"});
  EXPECT_EQ(table.exit_code, 0) << table.output;
  for (const auto* header : {"NAME", "STATE", "CREATED", "EXPIRES", "CREATED BY"})
    EXPECT_TRUE(contains(table.output, header)) << table.output;
  EXPECT_TRUE(contains(table.output, "never")) << "admin does not expire\n" << table.output;

  // --output json carries the credential too, once.
  auto bob = a.lab_json({"operator", "add", "bob"});
  EXPECT_TRUE(std::string(bob.at("token").as_string()).starts_with("lab-op-"));
  EXPECT_EQ(bob.at("expires_at").as_int64(), 0);

  auto twice = a.lab({"operator", "add", "alice"});
  EXPECT_EQ(twice.exit_code, 1) << twice.output;
  EXPECT_TRUE(contains(twice.output, "operator 'alice' exists")) << twice.output;
  auto bad_name = a.lab({"operator", "add", "Alice Smith"});
  EXPECT_EQ(bad_name.exit_code, 2) << bad_name.output;  // refused before anything is sent
  EXPECT_TRUE(contains(bad_name.output, "Alice Smith")) << bad_name.output;
  auto bad_ttl = a.lab({"operator", "add", "carol", "--ttl", "soon"});
  EXPECT_EQ(bad_ttl.exit_code, 2) << bad_ttl.output;
  EXPECT_TRUE(contains(bad_ttl.output, "'soon'")) << bad_ttl.output;
  EXPECT_FALSE(find_operator(a.lab_json({"operator", "list"}), "carol"));
}

// A token no machine could use is refused before anything is sent: with the coordinator down
// the operator still gets a usage error (2) naming the value, not a connection error.
TEST(TrustCli, TokenArgumentsAreCheckedBeforeAnythingIsSent) {
  Appliance a;
  ASSERT_EQ(a.stop(), 0);
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--ttl", "5x"}, "--ttl '5x' is not a duration"},
      {{"--ttl", "0s"}, "--ttl '0s' is not a duration"},
      {{"--bind-mac", "notamac"}, "--bind-mac 'notamac' is not a MAC address"},
      {{"--bind", "mac=52:54:00:zz:00:01"}, "'52:54:00:zz:00:01' is not a MAC address"},
      {{"--bind-ip", "999.1.1.1"}, "--bind-ip '999.1.1.1' is not an IP address"},
  };
  for (const auto& [flags, message] : cases) {
    std::vector<std::string> args = {"token", "create"};
    args.insert(args.end(), flags.begin(), flags.end());
    auto r = a.lab(args);
    EXPECT_EQ(r.exit_code, 2) << flags[1] << ": " << r.output;
    EXPECT_TRUE(contains(r.output, message)) << r.output;
  }
  auto operator_ttl = a.lab({"operator", "add", "dave", "--ttl", "soon"});
  EXPECT_EQ(operator_ttl.exit_code, 2) << operator_ttl.output;
  EXPECT_TRUE(contains(operator_ttl.output, "--ttl 'soon' is not a duration"))
      << operator_ttl.output;
}

// Names are checked by the coordinator's own rule before anything is sent: "a/b", "." and ".."
// cannot even be a path segment, and used to come back as "no such route".
TEST(TrustCli, NamesAreCheckedBeforeAnythingIsSent) {
  Appliance a;
  ASSERT_EQ(a.stop(), 0);
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"secret", "set", "a/b", "--from-file", "/dev/null"}, "name: 'a/b' has '/' at position 2"},
      {{"group", "set", "..", "--selector", "role=web"}, "name: '..' must start with a letter"},
      {{"group", "set", "web", "--include", "."}, "--include: '.' must start with a letter"},
      {{"node", "show", "a/b"}, "node: 'a/b' has '/' at position 2"},
      {{"node", "delete", ""}, "node: '' must not be empty"},
      {{"operator", "add", "Alice"}, "name: 'Alice' has upper case letters"},
      {{"secret", "delete", std::string(64, 'a')}, "is 64 characters, at most 63 allowed"},
  };
  for (const auto& [args, message] : cases) {
    auto r = a.lab(args);
    EXPECT_EQ(r.exit_code, 2) << args[0] << " " << args[1] << ": " << r.output;
    EXPECT_TRUE(contains(r.output, message)) << r.output;
    EXPECT_FALSE(contains(r.output, "cannot reach")) << r.output;
  }
}

// Failures name their cause once: a plain-HTTP URL, a server the pinned CA did not sign (both
// named), an unreachable coordinator (its URL once), a file the operator named; internal error
// codes only with --debug.
TEST(TrustCli, FailuresNameTheirCause) {
  Appliance a;
  const std::string plain = "http://127.0.0.1:" + std::to_string(a.port());
  auto http = a.lab({"node", "list", "--server", plain});
  EXPECT_EQ(http.exit_code, 2) << http.output;
  EXPECT_TRUE(contains(http.output, "the coordinator speaks HTTPS only, and " + plain +
                                        " (from --server) is plain HTTP: use https://"))
      << http.output;

  TestPki other("someone else's CA");
  const auto other_ca = a.dir().write("other-ca.pem", other.ca.pem());
  auto mismatch = a.lab({"node", "list", "--ca", other_ca.string()});
  EXPECT_EQ(mismatch.exit_code, 1) << mismatch.output;
  EXPECT_TRUE(
      contains(mismatch.output, "the server at " + a.url() + " presented a certificate for"))
      << mismatch.output;
  EXPECT_TRUE(contains(mismatch.output, "which the pinned CA 'someone else's CA' (--ca " +
                                            other_ca.string() + ") did not sign"))
      << mismatch.output;
  EXPECT_TRUE(contains(mismatch.output, "hint: pass --ca with that appliance's ca.pem"))
      << mismatch.output;

  auto missing = a.lab({"secret", "set", "db", "--from-file", "/nonexistent/value"});
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  EXPECT_TRUE(contains(missing.output, "cannot read '/nonexistent/value': No such file"))
      << missing.output;
  EXPECT_FALSE(contains(missing.output, "--data-dir")) << missing.output;

  ASSERT_EQ(a.stop(), 0);
  auto down = a.lab({"node", "list"});
  EXPECT_EQ(down.exit_code, 1) << down.output;
  std::size_t urls = 0;
  for (auto at = down.output.find(a.url()); at != std::string::npos;
       at = down.output.find(a.url(), at + 1))
    ++urls;
  EXPECT_EQ(urls, 1U) << down.output;
  EXPECT_FALSE(contains(down.output, "(lab.")) << down.output;
  auto debug = a.lab({"node", "list", "--debug"});
  EXPECT_TRUE(contains(debug.output, "(lab.")) << debug.output;
}

// A selector that does not parse is a usage error (2) with a caret under the column.
TEST(TrustCli, ASelectorErrorPointsAtItsColumn) {
  Appliance a;
  ASSERT_EQ(a.stop(), 0);
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"node", "list", "--selector", "role=web,,env"},
        std::vector<std::string>{"group", "set", "web", "--selector", "role=web,,env"},
        std::vector<std::string>{"secret", "grant", "db", "role=web,,env"}}) {
    auto r = a.lab(args);
    EXPECT_EQ(r.exit_code, 2) << args[0] << ": " << r.output;
    EXPECT_TRUE(contains(r.output, "selector 'role=web,,env' at column 10: expected a label key"))
        << r.output;
    EXPECT_TRUE(contains(r.output, "\n  role=web,,env\n           ^\n")) << r.output;
  }
}

// The coordinator holds the same rules for whoever calls its API directly.
TEST(TrustCli, TheCoordinatorRefusesWhatTheCliWould) {
  Appliance a;
  const std::vector<std::pair<std::string, std::string>> bodies = {
      {R"({"ttl":"1h","bind":{"mac":"notamac"}})", "bind.mac 'notamac' is not a MAC address"},
      {R"({"ttl":"1h","bind":{"ip":"999.1.1.1"}})", "bind.ip '999.1.1.1' is not an IP address"},
  };
  for (const auto& [body, message] : bodies) {
    auto r = a.curl({"-X", "POST", "-H", "Authorization: Bearer " + a.operator_token(), "-H",
                     "Content-Type: application/json", "--data", body},
                    "/v1/tokens");
    EXPECT_EQ(r.status, 400) << body << ": " << r.body;
    EXPECT_TRUE(contains(r.body, message)) << r.body;
  }
  auto secret =
      a.curl({"-X", "PUT", "-H", "Authorization: Bearer " + a.operator_token(), "--data", "v"},
             "/v1/secrets/-bad");
  EXPECT_EQ(secret.status, 400) << secret.body;
  EXPECT_TRUE(contains(secret.body, "secret name '-bad' must start with a letter or digit"))
      << secret.body;
  // A MAC binding is kept in its canonical form whatever the spelling.
  auto ok = a.curl({"-X", "POST", "-H", "Authorization: Bearer " + a.operator_token(), "-H",
                    "Content-Type: application/json", "--data",
                    R"({"ttl":"1h","bind":{"mac":"52-54-00-AB-CD-EF"}})"},
                   "/v1/tokens");
  EXPECT_EQ(ok.status, 201) << ok.body;
  EXPECT_TRUE(contains(ok.body, "52:54:00:ab:cd:ef")) << ok.body;
}

TEST(TrustCli, AnExpiredCredentialIsRefusedWithWhoseAndWhen) {
  Appliance a;
  const auto token = add_operator(a, "alice", {"--ttl", "2s"});
  const std::map<std::string, std::string> env = {{"LAB_TOKEN", token}};
  // Expiry is the coordinator's clock in whole seconds: poll it. That the credential worked
  // before is left to the other tests; on a loaded machine 2 s may pass before a first command.
  CommandResult r;
  ASSERT_TRUE(wait_until(
      [&] {
        r = a.lab({"node", "list"}, env);
        return r.exit_code != 0;
      },
      20s))
      << r.output;
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "lab: error: the credential of operator 'alice' expired at 20"))
      << r.output;
  EXPECT_TRUE(contains(r.output, "(the token from LAB_TOKEN)")) << "which was sent\n" << r.output;
  EXPECT_TRUE(contains(r.output,
                       "hint: check the operator token: lab sends --token-file FILE, "
                       "else LAB_TOKEN, else operator.token in --data-dir"))
      << r.output;
  EXPECT_TRUE(contains(r.output, "'lab operator add NAME'")) << r.output;
  EXPECT_FALSE(contains(r.output, token));

  const auto alice = find_operator(a.lab_json({"operator", "list"}), "alice");
  ASSERT_TRUE(alice);
  EXPECT_EQ(alice->at("state").as_string(), "expired");
}

TEST(TrustCli, ARevokedCredentialIsRefusedAndAdminCannotBeRevoked) {
  Appliance a;
  const auto token = add_operator(a, "dave");
  const auto file = a.dir().write("dave.token", token + "\n");
  auto before = a.lab({"token", "list", "--token-file", file.string()});
  EXPECT_EQ(before.exit_code, 0) << before.output;

  auto revoke = a.lab({"operator", "revoke", "dave"});
  EXPECT_EQ(revoke.exit_code, 0) << revoke.output;
  EXPECT_TRUE(contains(revoke.output, "operator dave revoked")) << revoke.output;

  auto after = a.lab({"token", "list", "--token-file", file.string()});
  EXPECT_EQ(after.exit_code, 1) << after.output;
  EXPECT_TRUE(contains(after.output, "the credential of operator 'dave' was revoked"))
      << after.output;
  EXPECT_TRUE(contains(after.output, "(the token from --token-file " + file.string() + ")"))
      << "which token was sent\n"
      << after.output;
  EXPECT_TRUE(contains(after.output, "lab operator add")) << after.output;
  const auto dave = find_operator(a.lab_json({"operator", "list"}), "dave");
  ASSERT_TRUE(dave);
  EXPECT_EQ(dave->at("state").as_string(), "revoked");

  // The admin credential is a file of the appliance, not a row to revoke.
  auto admin = a.lab({"operator", "revoke", "admin"});
  EXPECT_EQ(admin.exit_code, 1) << admin.output;
  EXPECT_TRUE(contains(admin.output, "operator.token")) << admin.output;
  EXPECT_EQ(a.lab({"operator", "list"}).exit_code, 0) << "admin still works";
  auto unknown = a.lab({"operator", "revoke", "nobody"});
  EXPECT_EQ(unknown.exit_code, 1) << unknown.output;
  EXPECT_TRUE(contains(unknown.output, "no operator 'nobody'")) << unknown.output;

  // A credential nobody issued is refused the same way, naming none.
  auto stranger = a.lab({"node", "list"}, {{"LAB_TOKEN", "lab-op-nope"}});
  EXPECT_EQ(stranger.exit_code, 1) << stranger.output;
  EXPECT_TRUE(contains(stranger.output,
                       "lab: error: operator credential not recognised (the token from LAB_TOKEN)"))
      << stranger.output;
  EXPECT_TRUE(contains(stranger.output, "hint: check the operator token")) << stranger.output;
  // The data directory's operator.token is the default; a wrong one is named by its path.
  auto other = a.dir() / "other-data";
  std::filesystem::create_directories(other);
  std::filesystem::copy_file(a.data_dir() / "ca.pem", other / "ca.pem");
  a.dir().write("other-data/operator.token", "lab-op-nope\n");
  auto default_file = a.lab({"node", "list", "--data-dir", other.string(), "--server", a.url()});
  EXPECT_EQ(default_file.exit_code, 1) << default_file.output;
  EXPECT_TRUE(
      contains(default_file.output, "(the token from " + (other / "operator.token").string() + ")"))
      << default_file.output;
  // An empty token is refused before anything is sent.
  const auto empty = a.dir().write("empty.token", "\n");
  auto nothing = a.lab({"node", "list", "--token-file", empty.string()});
  EXPECT_EQ(nothing.exit_code, 1) << nothing.output;
  EXPECT_TRUE(contains(nothing.output,
                       "the operator token from --token-file " + empty.string() + " is empty"))
      << nothing.output;
}

TEST(TrustCli, MachineRegisterListUnregister) {
  Appliance a;
  auto reg = a.lab(
      {"machine", "register", "52-54-00-AA-BB-01", "--ip", "10.0.0.5", "--description", "rack 4"});
  ASSERT_EQ(reg.exit_code, 0) << reg.output;
  EXPECT_TRUE(contains(reg.output, "52:54:00:aa:bb:01")) << reg.output;
  EXPECT_TRUE(contains(reg.output, "10.0.0.5")) << reg.output;

  auto list = a.lab_json({"machine", "list"});
  ASSERT_EQ(list.as_array().size(), 1U) << shared::json::to_string(list);
  const auto& m = list.as_array()[0];
  EXPECT_EQ(m.at("mac").as_string(), "52:54:00:aa:bb:01");
  EXPECT_EQ(m.at("ip").as_string(), "10.0.0.5");
  EXPECT_EQ(m.at("description").as_string(), "rack 4");
  EXPECT_GT(m.at("registered_at").as_int64(), 0);
  auto table = a.lab({"machine", "list"});
  EXPECT_EQ(table.exit_code, 0) << table.output;
  for (const auto* cell : {"MAC", "IP", "NODE", "REGISTERED", "DESCRIPTION", "rack 4"})
    EXPECT_TRUE(contains(table.output, cell)) << table.output;

  // Registering again moves it to another address.
  EXPECT_EQ(a.lab({"machine", "register", "52:54:00:aa:bb:01", "--ip", "fd00::5"}).exit_code, 0);
  EXPECT_EQ(a.lab_json({"machine", "list"}).as_array()[0].at("ip").as_string(), "fd00::5");

  // Syntax refused here (2), before anything is sent; the server's refusals are 1.
  auto bad_mac = a.lab({"machine", "register", "52:54:00:zz:bb:01", "--ip", "10.0.0.6"});
  EXPECT_EQ(bad_mac.exit_code, 2) << bad_mac.output;
  EXPECT_TRUE(contains(bad_mac.output, "'52:54:00:zz:bb:01' is not a MAC address"))
      << bad_mac.output;
  auto bad_ip = a.lab({"machine", "register", "52:54:00:aa:bb:02", "--ip", "10.0.0.300"});
  EXPECT_EQ(bad_ip.exit_code, 2) << bad_ip.output;
  EXPECT_TRUE(contains(bad_ip.output, "--ip '10.0.0.300' is not an IP address")) << bad_ip.output;
  EXPECT_EQ(a.lab({"machine", "register", "52:54:00:aa:bb:02"}).exit_code, 2) << "--ip required";
  auto long_text = a.lab({"machine", "register", "52:54:00:aa:bb:02", "--ip", "10.0.0.6",
                          "--description", std::string(201, 'x')});
  EXPECT_EQ(long_text.exit_code, 1) << long_text.output;
  EXPECT_TRUE(contains(long_text.output, "description")) << long_text.output;
  EXPECT_EQ(a.lab_json({"machine", "list"}).as_array().size(), 1U);

  auto gone = a.lab({"machine", "unregister", "525400aabb01"});
  EXPECT_EQ(gone.exit_code, 0) << gone.output;
  EXPECT_TRUE(contains(gone.output, "machine 52:54:00:aa:bb:01 unregistered")) << gone.output;
  EXPECT_TRUE(a.lab_json({"machine", "list"}).as_array().empty());
  auto again = a.lab({"machine", "unregister", "52:54:00:aa:bb:01"});
  EXPECT_EQ(again.exit_code, 1) << again.output;
  EXPECT_TRUE(contains(again.output, "no registered machine 52:54:00:aa:bb:01")) << again.output;
  EXPECT_EQ(a.lab({"machine", "unregister", "nope"}).exit_code, 2);

  std::vector<std::string> actions;
  const auto audit = a.lab_json({"audit", "list"});
  for (const auto& e : audit.as_array())
    actions.emplace_back(e.at("action").as_string());
  EXPECT_EQ(std::count(actions.begin(), actions.end(), "machine.register"), 2);
  EXPECT_EQ(std::count(actions.begin(), actions.end(), "machine.unregister"), 1);
}

TEST(TrustCli, NodeMacsBelongToOneNode) {
  Appliance a;
  auto web = join(a, a.create_token("role=web"), "web-1");
  auto db = join(a, a.create_token("role=db"), "db-1");
  ASSERT_TRUE(web && db);

  auto none = lab_split(a, {"node", "macs", "web-1"});
  EXPECT_EQ(none.exit_code, 0) << none.err;
  EXPECT_TRUE(contains(none.err, "node web-1 has no MAC")) << none.err;

  auto added =
      a.lab({"node", "macs", "web-1", "--add", "52:54:00:00:00:01", "--add", "52-54-00-00-00-02"});
  ASSERT_EQ(added.exit_code, 0) << added.output;
  EXPECT_TRUE(contains(added.output, "52:54:00:00:00:01")) << added.output;
  EXPECT_TRUE(contains(added.output, "52:54:00:00:00:02")) << added.output;

  // Another node's MAC: the server names the owner and the way out.
  auto owned = a.lab({"node", "macs", "db-1", "--add", "52:54:00:00:00:01"});
  EXPECT_EQ(owned.exit_code, 1) << owned.output;
  EXPECT_TRUE(contains(owned.output,
                       "lab: error: MAC 52:54:00:00:00:01 belongs to node web-1; remove it there "
                       "first ('lab node macs web-1 --remove 52:54:00:00:00:01')"))
      << owned.output;
  auto bad = a.lab({"node", "macs", "db-1", "--add", "52:54:00:00:00:03", "--remove", "eth0"});
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_TRUE(contains(bad.output, "--remove 'eth0' is not a MAC address")) << bad.output;
  EXPECT_TRUE(a.lab_json({"node", "macs", "db-1"}).at("macs").as_array().empty())
      << "nothing sent with a bad value";

  auto removed = a.lab_json({"node", "macs", "web-1", "--remove", "52:54:00:00:00:02"});
  EXPECT_EQ(shared::json::to_string(removed.at("macs")), R"(["52:54:00:00:00:01"])");
  auto shown = a.lab({"node", "macs", "web-1"});
  EXPECT_TRUE(contains(shown.output, "52:54:00:00:00:01")) << shown.output;
  EXPECT_FALSE(contains(shown.output, "52:54:00:00:00:02")) << shown.output;
  EXPECT_EQ(a.lab({"node", "macs", "no-such-node"}).exit_code, 1);

  std::string actors;
  const auto audit = a.lab_json({"audit", "list"});
  for (const auto& e : audit.as_array()) {
    if (e.at("action").as_string() == "node.macs")
      actors += std::string(e.at("actor").as_string()) + ",";
  }
  EXPECT_EQ(actors, "admin,admin,") << "two changes; the refused and the empty ones are not";
}

// The join a booting agent OS makes: the boot token from the script's kernel command line, and
// the MAC it booted from among its facts.
std::optional<std::string> boot_join(const Appliance& a, const std::string& script,
                                     const std::string& mac) {
  const auto at = script.find("lab.join=");
  if (at == std::string::npos) {
    ADD_FAILURE() << "no lab.join= in\n" << script;
    return std::nullopt;
  }
  const auto begin = at + std::string_view("lab.join=").size();
  const auto js = shared::protocol::parse_join_string(
      script.substr(begin, script.find_first_of(" \n", begin) - begin));
  if (!js) {
    ADD_FAILURE() << js.error().message();
    return std::nullopt;
  }
  auto m = make_join_request(js->token.to_string(), "reinstalled");
  auto body = shared::json::parse_object(m.body).value();
  body["facts"].as_object()["macs"] = json::array{json::value(mac)};
  auto r = post_join(a, shared::json::to_string(body));
  if (!r || r->status != 200) {
    ADD_FAILURE() << "join: " << (r ? r->body : r.error().message());
    return std::nullopt;
  }
  return std::string(shared::json::parse_object(r->body).value().at("node_id").as_string());
}

TEST(TrustCli, NodeReinstallArmsOneReEnrolmentByTheNextNetworkBoot) {
  const auto http_port = std::to_string(free_loopback_port());
  Appliance a({"httpboot.enabled=true", "httpboot.listen=127.0.0.1:" + http_port});
  auto web = join(a, a.create_token("role=web"), "web-1");
  ASSERT_TRUE(web);

  // The agent reports how its keys are kept; list and show say it, "unknown" until then.
  auto before = a.lab({"node", "list"});
  EXPECT_TRUE(contains(before.output, "KEY")) << before.output;
  EXPECT_TRUE(contains(before.output, "unknown")) << before.output;
  auto client = node_client(a, *web);
  auto report = client.post_json("/v1/agent/report",
                                 R"({"state":"ready","facts":{"key_protection":"tpm+pcr"}})");
  ASSERT_TRUE(report && report->status == 204) << (report ? report->body : "");
  auto list = a.lab({"node", "list"});
  EXPECT_TRUE(contains(list.output, "KEY")) << list.output;
  EXPECT_TRUE(contains(list.output, "tpm+pcr")) << list.output;
  EXPECT_EQ(a.lab_json({"node", "list"}).as_array()[0].at("key_protection").as_string(), "tpm+pcr");

  // Nothing to recognise the next boot by: the server says what to do.
  auto no_mac = a.lab({"node", "reinstall", "web-1"});
  EXPECT_EQ(no_mac.exit_code, 1) << no_mac.output;
  EXPECT_TRUE(contains(no_mac.output, "node web-1 has no MAC to recognise its next network boot"))
      << no_mac.output;
  EXPECT_TRUE(contains(no_mac.output, "'lab node macs web-1 --add MAC'")) << no_mac.output;
  EXPECT_FALSE(a.lab_json({"node", "show", "web-1"}).at("reinstall_armed").as_bool());

  const std::string mac = "52:54:00:00:00:0a";
  ASSERT_EQ(a.lab({"node", "macs", "web-1", "--add", mac}).exit_code, 0);
  auto armed = a.lab({"node", "reinstall", "web-1"});
  ASSERT_EQ(armed.exit_code, 0) << armed.output;
  EXPECT_TRUE(contains(armed.output,
                       "node web-1: reinstall armed\nnext: the next network boot "
                       "from " +
                           mac + " enrols node web-1 again, with new keys"))
      << armed.output;
  EXPECT_TRUE(contains(armed.output, "lab machine register MAC --ip IP")) << armed.output;
  auto unknown = a.lab({"node", "reinstall", "no-such-node"});
  EXPECT_EQ(unknown.exit_code, 1) << unknown.output;
  EXPECT_TRUE(contains(unknown.output, "no node 'no-such-node'")) << unknown.output;
  auto shown = a.lab({"node", "show", "web-1"});
  EXPECT_TRUE(contains(shown.output, "key protection:  tpm+pcr")) << shown.output;
  EXPECT_TRUE(contains(shown.output, "reinstall armed: yes")) << shown.output;
  EXPECT_TRUE(a.lab_json({"node", "reinstall", "web-1"}).at("reinstall_armed").as_bool());

  // This appliance's DHCP serves nothing here: the machine gets a boot token once registered,
  // bound to the address it boots from (loopback, where this test's requests come from).
  const std::string script_url = "http://127.0.0.1:" + http_port + "/boot/52-54-00-00-00-0a.ipxe";
  auto unregistered =
      run({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30", script_url});
  EXPECT_EQ(unregistered.output, "403") << unregistered.output;
  ASSERT_EQ(a.lab({"machine", "register", mac, "--ip", "127.0.0.1"}).exit_code, 0);
  auto machines = a.lab_json({"machine", "list"});
  EXPECT_EQ(machines.as_array()[0].at("node_id").as_string(), web->id);
  auto script = run({"curl", "-sS", "--fail", "--max-time", "30", script_url});
  ASSERT_EQ(script.exit_code, 0) << script.output;

  auto rejoined = boot_join(a, script.output, mac);
  ASSERT_TRUE(rejoined);
  EXPECT_EQ(*rejoined, web->id) << "the same node again, with new keys";
  auto after = a.lab_json({"node", "show", web->id});
  EXPECT_FALSE(after.at("reinstall_armed").as_bool()) << "one re-enrolment, then disarmed";
  EXPECT_NE(after.at("cert_serial").as_string(), "");
  auto disarmed = a.lab({"node", "show", "web-1"});
  EXPECT_TRUE(contains(disarmed.output, "reinstall armed: no")) << disarmed.output;
}

TEST(TrustCli, SecretRequireIsSetAndListed) {
  Appliance a;
  auto set = [&](const std::vector<std::string>& extra) {
    std::string script = "printf v | LAB_DATA_DIR='" + a.data_dir().string() + "' '" +
                         lab_binary().string() + "' secret set db-pass";
    for (const auto& e : extra)
      script += " '" + e + "'";
    return sh(script);
  };
  auto require_of = [&] {
    return std::string(a.lab_json({"secret", "list"}).as_array()[0].at("require").as_string());
  };
  auto r = set({"--entitlement", "role=db", "--require", "tpm"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "secret db-pass set (version ")) << r.output;
  EXPECT_TRUE(contains(r.output, ", require tpm)")) << r.output;
  EXPECT_EQ(require_of(), "tpm");
  auto table = a.lab({"secret", "list"});
  EXPECT_TRUE(contains(table.output, "REQUIRE")) << table.output;
  EXPECT_TRUE(contains(table.output, "tpm")) << table.output;

  EXPECT_EQ(set({}).exit_code, 0);
  EXPECT_EQ(require_of(), "tpm") << "a new value keeps the requirement";
  EXPECT_EQ(set({"--require", "tpm+pcr"}).exit_code, 0);
  EXPECT_EQ(require_of(), "tpm+pcr");
  EXPECT_EQ(set({"--require", "any"}).exit_code, 0);
  EXPECT_EQ(require_of(), "");
  EXPECT_TRUE(contains(a.lab({"secret", "list"}).output, "any"));

  auto bad = set({"--require", "fips"});
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_TRUE(contains(bad.output, "--require: fips not in {tpm,tpm+pcr,any}")) << bad.output;
}

// Every new verb explains itself without a coordinator to talk to.
TEST(TrustCli, EveryVerbHasHelp) {
  const std::vector<std::vector<std::string>> verbs = {
      {"node", "reinstall"}, {"node", "macs"},          {"machine", "register"},
      {"machine", "list"},   {"machine", "unregister"}, {"operator", "add"},
      {"operator", "list"},  {"operator", "revoke"},    {"secret", "set"}};
  for (const auto& v : verbs) {
    auto r = run({lab_binary().string(), v[0], v[1], "--help"});
    EXPECT_EQ(r.exit_code, 0) << v[0] << " " << v[1] << "\n" << r.output;
    EXPECT_TRUE(contains(r.output, "Usage: lab " + v[0] + " " + v[1])) << r.output;
  }
  auto macs = run({lab_binary().string(), "node", "macs", "--help"});
  EXPECT_TRUE(contains(macs.output, "--add")) << macs.output;
  EXPECT_TRUE(contains(macs.output, "--remove")) << macs.output;
  auto require = run({lab_binary().string(), "secret", "set", "--help"});
  EXPECT_TRUE(contains(require.output, "--require")) << require.output;
}

}  // namespace
}  // namespace lab::tests::coordinator
