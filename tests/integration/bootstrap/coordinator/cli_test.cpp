// The operator side through the real `lab` CLI and curl against a real `lab serve`: token
// lifecycle, nodes, groups, secrets, audit, output formats, exit codes, and authentication.
#include "shared/json/json.hpp"
#include "shared/protocol/protocol.hpp"
#include "tests/integration/bootstrap/coordinator/appliance.hpp"
#include "tests/support/pki.hpp"
#include "tests/support/text.hpp"

#include <gtest/gtest.h>

#include <poll.h>
#include <pty.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <regex>

namespace lab::tests::coordinator {
namespace {

namespace json = boost::json;

using lab::tests::contains;

// A command run on a new pseudo-terminal, as an operator at a shell would run it: it waits for
// `prompt` in what the terminal shows, records whether the terminal echoes at that moment, types
// `typed`, and collects everything shown until the command exits.
struct TerminalRun {
  int exit_code = -1;
  std::string shown;
  bool prompted = false;
  bool echo_at_prompt = true;
};

TerminalRun run_on_terminal(const Appliance& a, const std::vector<std::string>& argv,
                            const std::string& prompt, const std::string& typed) {
  std::vector<std::string> env = {"LAB_DATA_DIR=" + a.data_dir().string()};
  for (char** e = environ; *e != nullptr; ++e)
    env.emplace_back(*e);
  std::vector<char*> args;
  std::vector<char*> envp;
  args.reserve(argv.size() + 1);
  envp.reserve(env.size() + 1);
  for (const auto& s : argv)
    args.push_back(const_cast<char*>(s.c_str()));
  args.push_back(nullptr);
  for (const auto& s : env)
    envp.push_back(const_cast<char*>(s.c_str()));
  envp.push_back(nullptr);

  TerminalRun r;
  int master = -1;
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  if (pid < 0)
    return r;
  if (pid == 0) {
    ::execve(args[0], args.data(), envp.data());
    ::_exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  // false at the end of the output (EIO once the command and everything on the terminal exited)
  auto read_some = [&] {
    pollfd p{master, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0)
      return std::chrono::steady_clock::now() < deadline;
    std::array<char, 4096> buf{};
    const ssize_t n = ::read(master, buf.data(), buf.size());
    if (n <= 0)
      return false;
    r.shown.append(buf.data(), static_cast<std::size_t>(n));
    return true;
  };
  while (r.shown.find(prompt) == std::string::npos && read_some()) {
  }
  r.prompted = r.shown.find(prompt) != std::string::npos;
  termios t{};
  ::tcgetattr(master, &t);  // a pty's master reports the terminal's settings
  r.echo_at_prompt = (t.c_lflag & ECHO) != 0;
  if (r.prompted && ::write(master, typed.data(), typed.size()) < 0)
    r.prompted = false;
  while (read_some()) {
  }
  ::close(master);
  int status = 0;
  ::kill(pid, SIGKILL);  // nothing if it exited; bounded if it did not
  ::waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::int64_t secret_size(const Appliance& a, const std::string& name) {
  const auto secrets = a.lab_json({"secret", "list"});
  for (const auto& s : secrets.as_array())
    if (s.at("name").as_string() == name)
      return s.at("size").to_number<std::int64_t>();
  return -1;
}

// At a terminal the value is typed at a prompt that does not echo it, and the Enter that ends it
// is not stored; piped, it is stored byte for byte. Ctrl-C at the prompt gives the shell its echo
// back.
TEST(CoordinatorCli, SecretTypedAtATerminalIsNotEchoedAndKeepsNoNewline) {
  Appliance a;
  const std::string prompt = "(typing is not shown): ";
  auto typed = run_on_terminal(a, {lab_binary().string(), "secret", "set", "typed"}, prompt,
                               "hunter2-typed\n");
  ASSERT_TRUE(typed.prompted) << typed.shown;
  EXPECT_FALSE(typed.echo_at_prompt);
  EXPECT_EQ(typed.exit_code, 0) << typed.shown;
  EXPECT_TRUE(contains(typed.shown, "value of secret typed")) << typed.shown;
  EXPECT_TRUE(contains(typed.shown, "secret typed set")) << typed.shown;
  EXPECT_FALSE(contains(typed.shown, "hunter2")) << typed.shown;
  EXPECT_EQ(secret_size(a, "typed"), 13);

  auto piped = sh("printf 'abc\\n' | LAB_DATA_DIR='" + a.data_dir().string() + "' '" +
                  lab_binary().string() + "' secret set piped");
  EXPECT_EQ(piped.exit_code, 0) << piped.output;
  EXPECT_EQ(secret_size(a, "piped"), 4);

  auto nothing =
      run_on_terminal(a, {lab_binary().string(), "secret", "set", "nothing"}, prompt, "\n");
  EXPECT_EQ(nothing.exit_code, 2) << nothing.shown;
  EXPECT_TRUE(contains(nothing.shown, "empty")) << nothing.shown;

  // The shell traps SIGINT (a handler, which exec resets), so it outlives lab and shows the
  // terminal's settings after Ctrl-C (the terminal's interrupt character, ^C).
  auto interrupted = run_on_terminal(
      a,
      {"/bin/sh", "-c", "trap : INT; \"$0\" secret set cancelled; echo \"rc=$?\"; stty -a",
       lab_binary().string()},
      prompt, "\x03");
  ASSERT_TRUE(interrupted.prompted) << interrupted.shown;
  EXPECT_TRUE(contains(interrupted.shown, "rc=130")) << interrupted.shown;
  EXPECT_TRUE(std::regex_search(interrupted.shown, std::regex("(^|\\s)echo(\\s|$)")))
      << interrupted.shown;
  EXPECT_EQ(secret_size(a, "cancelled"), -1);
}

// A mistyped or missing command is a usage error (2) that names the command it was given to, the
// nearest known one, and that command's own --help; both programs.
TEST(CoordinatorCli, AMistypedCommandIsNamedWithTheNearestOne) {
  auto typo = run({lab_binary().string(), "node", "lsit"});
  EXPECT_EQ(typo.exit_code, 2);
  EXPECT_TRUE(contains(typo.output, "unknown command 'lsit' for 'lab node'; did you mean 'list'?"))
      << typo.output;
  EXPECT_TRUE(contains(typo.output, "hint: run 'lab node --help' for usage")) << typo.output;
  auto with_flags = run({lab_binary().string(), "secret", "-o", "json", "lsit"});
  EXPECT_EQ(with_flags.exit_code, 2);
  EXPECT_TRUE(contains(with_flags.output, "did you mean 'list'?")) << with_flags.output;
  auto missing = run({lab_binary().string(), "group"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_TRUE(contains(missing.output, "'lab group' needs a command: ")) << missing.output;
  auto flag = run({lab_binary().string(), "token", "list", "--bogus"});
  EXPECT_EQ(flag.exit_code, 2);
  EXPECT_TRUE(contains(flag.output, "hint: run 'lab token list --help' for usage")) << flag.output;
  auto agent = run({labd_binary().string(), "stauts"});
  EXPECT_EQ(agent.exit_code, 2);
  EXPECT_TRUE(contains(agent.output, "unknown command 'stauts' for 'labd'; did you mean 'status'?"))
      << agent.output;
}

// `lab help CMD...` is `lab CMD... --help`; a command's help lists the options it takes from
// the commands above it and an example; man pages and completion come from the same tree.
TEST(CoordinatorCli, HelpManPagesAndCompletionComeFromTheCommandTree) {
  auto help = run({lab_binary().string(), "help", "node", "list"});
  EXPECT_EQ(help.exit_code, 0) << help.output;
  EXPECT_EQ(help.output, run({lab_binary().string(), "node", "list", "--help"}).output);
  EXPECT_TRUE(contains(help.output, "--selector")) << help.output;
  EXPECT_TRUE(contains(help.output, "Options of the commands above, accepted here too:"))
      << help.output;
  EXPECT_TRUE(std::regex_search(help.output, std::regex(R"(\n  -o, --output FORMAT +text)")))
      << help.output;
  EXPECT_TRUE(contains(help.output, "--server")) << help.output;
  EXPECT_TRUE(contains(help.output, "Example:\n  lab node list")) << help.output;
  auto top = run({lab_binary().string(), "help"});
  EXPECT_EQ(top.exit_code, 0) << top.output;
  EXPECT_TRUE(contains(top.output, "completion")) << top.output;
  const std::string labd_help = run({labd_binary().string(), "status", "--help"}).output;
  EXPECT_TRUE(contains(labd_help, "Options of the commands above")) << labd_help;
  EXPECT_TRUE(contains(labd_help, "--config")) << labd_help;

  TempDir dir("lab-man");
  auto man = run({lab_binary().string(), "man", "--out", dir.path().string()});
  ASSERT_EQ(man.exit_code, 0) << man.output;
  for (const char* page : {"lab.1", "lab-node.1", "lab-node-list.1", "lab-audit-list.1"})
    EXPECT_TRUE(std::filesystem::exists(dir / page)) << page;
  const std::string list_page = read_file(dir / "lab-node-list.1");
  EXPECT_TRUE(contains(list_page, ".SH SYNOPSIS\n.B lab node list")) << list_page;
  EXPECT_TRUE(contains(list_page, "\\-\\-selector")) << list_page;
  EXPECT_TRUE(contains(list_page, ".SH EXAMPLES")) << list_page;
  // man itself renders every page without a warning.
  auto rendered = sh("cd '" + dir.path().string() +
                     "' && for p in *.1; do MANWIDTH=80 man --warnings -l \"$p\" 2>&1 >/dev/null; "
                     "done");
  EXPECT_EQ(rendered.output, "") << rendered.output;

  // bash: the generated script completes commands, options and -o values at each level.
  const std::string script = run({lab_binary().string(), "completion", "bash"}).output;
  TempDir sdir("lab-completion");
  sdir.write("lab.bash", script);
  auto complete = [&](const std::string& words) {
    return run({"bash", "-c",
                "source '" + (sdir / "lab.bash").string() + "'; COMP_WORDS=(" + words +
                    "); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _lab_complete; "
                    "echo \"${COMPREPLY[*]}\""})
        .output;
  };
  EXPECT_EQ(complete("lab no"), "node\n");
  EXPECT_EQ(complete("lab node li"), "list\n");
  EXPECT_TRUE(contains(complete("lab node list --s"), "--selector"))
      << complete("lab node list --s");
  EXPECT_TRUE(contains(complete("lab node list --se"), "--server")) << "inherited options too";
  EXPECT_EQ(complete("lab -o json node l"), "list label\n");
  EXPECT_EQ(complete("lab node list -o y"), "yaml\n");
  for (const char* shell : {"zsh", "fish"}) {
    auto r = run({lab_binary().string(), "completion", shell});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_TRUE(contains(r.output, "node")) << r.output;
  }
  // fish asks its own completion machinery; zsh runs the function with compadd standing in
  // for the completion system.
  sdir.write("lab.fish", run({lab_binary().string(), "completion", "fish"}).output);
  auto fish = run(
      {"fish", "-c", "source '" + (sdir / "lab.fish").string() + "'; complete -C 'lab node li'"});
  EXPECT_TRUE(contains(fish.output, "list\t")) << fish.output;
  sdir.write("_lab", run({lab_binary().string(), "completion", "zsh"}).output);
  auto zsh = run({"zsh", "-c",
                  "compadd() { [[ $1 == -- ]] && shift; print -l -- \"$@\" }; "
                  "words=(lab node li); CURRENT=3; source '" +
                      (sdir / "_lab").string() + "'"});
  EXPECT_TRUE(zsh.output.starts_with("list\nshow\n")) << zsh.output;  // `lab node`'s commands
  EXPECT_FALSE(contains(zsh.output, "serve")) << zsh.output;
  auto bad = run({lab_binary().string(), "completion", "tcsh"});
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
}

// -o json|yaml|wide anywhere on the line, for lab and labd alike.
TEST(CoordinatorCli, OutputFormatIsAcceptedAnywhereOnTheLine) {
  Appliance a;
  auto web = join(a, a.create_token("role=web"), "web-1");
  ASSERT_TRUE(web);
  const auto before = a.lab({"-o", "json", "node", "list"});
  ASSERT_EQ(before.exit_code, 0) << before.output;
  EXPECT_EQ(before.output, a.lab({"node", "-o", "json", "list"}).output);
  EXPECT_EQ(before.output, a.lab({"node", "list", "--output", "json"}).output);
  EXPECT_TRUE(shared::json::parse(before.output)) << before.output;
  auto yaml = a.lab({"node", "show", "web-1", "-o", "yaml"});
  ASSERT_EQ(yaml.exit_code, 0) << yaml.output;
  EXPECT_TRUE(yaml.output.starts_with("---\nid: ")) << yaml.output;
  EXPECT_TRUE(contains(yaml.output, "\nname: web-1\n")) << yaml.output;
  EXPECT_TRUE(contains(yaml.output, "\nlabels:\n  role: web\n")) << yaml.output;
  {
    // What YAML reads back is what JSON says.
    TempDir d("lab-yaml");
    d.write("node.yaml", yaml.output);
    d.write("node.json", a.lab({"node", "show", "web-1", "-o", "json"}).output);
    auto same = run({"sh", "-c",
                     "python3 -c 'import json,sys,yaml; a=yaml.safe_load(open(sys.argv[1])); "
                     "b=json.load(open(sys.argv[2])); a.pop(\"last_seen\"); b.pop(\"last_seen\"); "
                     "sys.exit(0 if a==b else 1)' '" +
                         (d / "node.yaml").string() + "' '" + (d / "node.json").string() + "'"});
    EXPECT_EQ(same.exit_code, 0) << same.output;
  }
  auto wide = a.lab({"node", "list", "-o", "wide"});
  EXPECT_TRUE(contains(wide.output, "REPORTED")) << wide.output;
  EXPECT_TRUE(contains(wide.output, "CERT EXPIRES")) << wide.output;
  EXPECT_FALSE(contains(a.lab({"node", "list"}).output, "CERT EXPIRES"));
  auto bad = a.lab({"node", "list", "-o", "xml"});
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_TRUE(contains(bad.output, "--output")) << bad.output;
}

// A label already set keeps its value unless --overwrite says otherwise; the audit trail lists
// newest first, bounded by --limit and --since.
TEST(CoordinatorCli, LabelOverwriteAndAuditNewestFirst) {
  Appliance a;
  auto web = join(a, a.create_token("role=web"), "web-1");
  ASSERT_TRUE(web);
  ASSERT_EQ(a.lab({"node", "label", "web-1", "tier=front"}).exit_code, 0);
  auto same = a.lab({"node", "label", "web-1", "tier=front"});
  EXPECT_EQ(same.exit_code, 0) << same.output;
  auto change = a.lab({"node", "label", "web-1", "tier=back"});
  EXPECT_EQ(change.exit_code, 1) << change.output;
  EXPECT_TRUE(contains(change.output,
                       "node web-1 already has tier=front; changing it to "
                       "tier=back needs overwrite: pass --overwrite"))
      << change.output;
  EXPECT_EQ(a.lab_json({"node", "show", "web-1"}).at("labels").at("tier"), "front");
  auto forced = a.lab({"node", "label", "web-1", "tier=back", "--overwrite"});
  EXPECT_EQ(forced.exit_code, 0) << forced.output;
  EXPECT_EQ(a.lab_json({"node", "show", "web-1"}).at("labels").at("tier"), "back");

  const auto all = a.lab_json({"audit", "list"}).as_array();
  ASSERT_GE(all.size(), 3U);
  for (std::size_t i = 1; i < all.size(); ++i)
    EXPECT_GT(all[i - 1].at("seq").as_int64(), all[i].at("seq").as_int64()) << "newest first";
  EXPECT_EQ(all.front().at("action"), "node.label");
  const auto two = a.lab_json({"audit", "list", "--limit", "2"}).as_array();
  ASSERT_EQ(two.size(), 2U);
  EXPECT_EQ(two[0].at("seq"), all[0].at("seq"));
  EXPECT_EQ(two[1].at("seq"), all[1].at("seq"));
  EXPECT_EQ(a.lab_json({"audit", "list", "--since", "1h"}).as_array().size(), all.size());
  EXPECT_TRUE(a.lab_json({"audit", "list", "--since", "2099-01-01"}).as_array().empty());
  const auto paged = a.lab_json({"audit", "list", "--after", "0", "--limit", "2"}).as_array();
  ASSERT_EQ(paged.size(), 2U);
  EXPECT_EQ(paged[0].at("seq"), 1);
  auto bad = a.lab({"audit", "list", "--since", "yesterday"});
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_TRUE(contains(bad.output, "--since 'yesterday' is neither a duration")) << bad.output;
  // Details are JSON objects, not JSON text inside a string.
  EXPECT_TRUE(all.front().at("detail").is_object()) << shared::json::to_string(all.front());
}

TEST(CoordinatorCli, FirstStartWritesCaTokenAndUrl) {
  Appliance a;
  struct stat st {};
  ASSERT_EQ(::stat((a.data_dir() / "operator.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  EXPECT_TRUE(contains(a.ca_pem(), "BEGIN CERTIFICATE"));
  EXPECT_EQ(read_file(a.data_dir() / "coordinator.url"), a.url() + "\n");
  // A restart keeps the same operator token and CA.
  const auto token = a.operator_token();
  const auto ca = a.ca_pem();
  EXPECT_EQ(a.stop(), 0);
  a.start();
  EXPECT_EQ(a.operator_token(), token);
  EXPECT_EQ(a.ca_pem(), ca);
  EXPECT_EQ(a.lab({"token", "list"}).exit_code, 0);
}

TEST(CoordinatorCli, TokenLifecycle) {
  Appliance a;
  // create: the join string on stdout, once.
  auto created = a.lab({"token", "create", "--label", "role=web,env=prod", "--ttl", "15m",
                        "--description", "rack 4"});
  ASSERT_EQ(created.exit_code, 0) << created.output;
  EXPECT_TRUE(contains(created.output, "lab1:")) << created.output;

  auto list = a.lab_json({"token", "list"});
  ASSERT_TRUE(list.is_array());
  ASSERT_EQ(list.as_array().size(), 1U);
  const auto& info = list.as_array()[0].as_object();
  const std::string id(info.at("id").as_string());
  EXPECT_EQ(info.at("state").as_string(), "active");
  EXPECT_EQ(info.at("description").as_string(), "rack 4");
  EXPECT_EQ(info.at("labels").at("role").as_string(), "web");
  EXPECT_FALSE(contains(shared::json::to_string(list), "lab1:"));  // never listed again

  auto table = a.lab({"token", "list"});
  EXPECT_EQ(table.exit_code, 0);
  EXPECT_TRUE(contains(table.output, "ID")) << table.output;
  EXPECT_TRUE(contains(table.output, id));
  EXPECT_TRUE(contains(table.output, "env=prod,role=web") ||
              contains(table.output, "role=web,env=prod"))
      << table.output;

  // A token joins once; then it is used.
  auto token = a.create_token("role=db");
  auto node = join(a, token, "db-1");
  ASSERT_TRUE(node);
  EXPECT_EQ(node->state, "enrolled");
  auto again = post_join(a, make_join_request(token, "db-2").body);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 403);
  EXPECT_EQ(again->body, R"({"error":"invalid token","code":"invalid_token"})");

  // revoke: the revoked token is refused with the same answer.
  EXPECT_EQ(a.lab({"token", "revoke", id}).exit_code, 0);
  auto listed = a.lab_json({"token", "list"});
  bool seen = false;
  for (const auto& t : listed.as_array()) {
    if (t.at("id").as_string() == id) {
      seen = true;
      EXPECT_EQ(t.at("state").as_string(), "revoked");
    }
  }
  EXPECT_TRUE(seen);
  const auto at = created.output.find("lab1:");
  const auto join_string = created.output.substr(at, created.output.find_first_of(" \n", at) - at);
  auto parsed = shared::protocol::parse_join_string(join_string);
  ASSERT_TRUE(parsed) << join_string;
  EXPECT_EQ(parsed->url, a.url());
  EXPECT_EQ(parsed->token.id, id);
  auto refused = post_join(a, make_join_request(parsed->token.to_string(), "web-9").body);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 403);
  EXPECT_EQ(refused->body, R"({"error":"invalid token","code":"invalid_token"})");
  auto unknown = a.lab({"token", "revoke", "0000000000000000"});
  EXPECT_EQ(unknown.exit_code, 1) << unknown.output;
  EXPECT_TRUE(contains(unknown.output, "lab: error:")) << unknown.output;

  // Usage errors exit 2.
  EXPECT_EQ(a.lab({"token", "create", "--label", "not a label"}).exit_code, 2);
  EXPECT_EQ(a.lab({"token"}).exit_code, 2);
  EXPECT_EQ(a.lab({"token", "list", "--output", "xml"}).exit_code, 2);

  // Every mutation is audited and the chain verifies; refusals within a second (one row per
  // caller and window).
  std::vector<std::string> actions;
  wait_until(
      [&] {
        actions.clear();
        const auto audit = a.lab_json({"audit", "list"});
        for (const auto& e : audit.as_array())
          actions.emplace_back(e.at("action").as_string());
        return std::find(actions.begin(), actions.end(), "join.refused") != actions.end();
      },
      10s);
  EXPECT_NE(std::find(actions.begin(), actions.end(), "token.create"), actions.end());
  EXPECT_NE(std::find(actions.begin(), actions.end(), "token.revoke"), actions.end());
  EXPECT_NE(std::find(actions.begin(), actions.end(), "join.refused"), actions.end());
  auto verify = a.lab({"audit", "verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_TRUE(contains(verify.output, "audit trail ok")) << verify.output;
}

TEST(CoordinatorCli, TokenCreateTakesLabelsAndBindAsOperatorsWriteThem) {
  Appliance a;
  auto created = a.lab({"token", "create", "--labels", "role=db,env=stage", "--bind", "host=web1",
                        "--bind", "ip=10.0.0.5"});
  ASSERT_EQ(created.exit_code, 0) << created.output;
  auto list = a.lab_json({"token", "list"});
  ASSERT_EQ(list.as_array().size(), 1U);
  const auto& info = list.as_array()[0].as_object();
  EXPECT_EQ(info.at("labels").at("env").as_string(), "stage");
  EXPECT_EQ(info.at("bind").at("host").as_string(), "web1");
  EXPECT_EQ(info.at("bind").at("ip").as_string(), "10.0.0.5");
  auto bad = a.lab({"token", "create", "--bind", "colour=red"});
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_TRUE(contains(bad.output, "colour=red")) << bad.output;
  EXPECT_EQ(a.lab_json({"token", "list"}).as_array().size(), 1U) << "nothing minted on bad input";
}

TEST(CoordinatorCli, NodesGroupsAndSecrets) {
  Appliance a;
  auto web = join(a, a.create_token("role=web"), "web-1");
  auto db = join(a, a.create_token("role=db"), "db-1");
  ASSERT_TRUE(web && db);

  auto nodes = a.lab_json({"node", "list"});
  EXPECT_EQ(nodes.as_array().size(), 2U);
  auto selected = a.lab_json({"node", "list", "--selector", "role=db"});
  ASSERT_EQ(selected.as_array().size(), 1U);
  EXPECT_EQ(selected.as_array()[0].at("id").as_string(), db->id);

  auto shown = a.lab({"node", "show", "web-1"});
  EXPECT_EQ(shown.exit_code, 0) << shown.output;
  EXPECT_TRUE(contains(shown.output, web->id));
  EXPECT_TRUE(contains(shown.output, "role=web"));

  auto labelled = a.lab_json({"node", "label", web->id, "tier=front", "zone=a"});
  EXPECT_EQ(labelled.at("labels").at("tier").as_string(), "front");
  auto unlabelled = a.lab_json({"node", "unlabel", web->id, "zone"});
  EXPECT_FALSE(unlabelled.at("labels").as_object().contains("zone"));
  EXPECT_EQ(a.lab({"node", "show", "no-such-node"}).exit_code, 1);
  EXPECT_EQ(a.lab({"node", "label", web->id, "=bad"}).exit_code, 2);

  // Groups, with includes and a refused cycle.
  EXPECT_EQ(a.lab({"group", "set", "front", "--selector", "tier=front"}).exit_code, 0);
  EXPECT_EQ(a.lab({"group", "set", "all", "--include", "front", "--selector", "role=db"}).exit_code,
            0);
  auto members = a.lab_json({"group", "members", "front"});
  ASSERT_EQ(members.as_array().size(), 1U);
  EXPECT_EQ(members.as_array()[0].at("id").as_string(), web->id);
  auto cycle = a.lab({"group", "set", "front", "--include", "all"});
  EXPECT_EQ(cycle.exit_code, 1);
  EXPECT_TRUE(contains(cycle.output, "front")) << cycle.output;
  auto groups = a.lab({"group", "list"});
  EXPECT_TRUE(contains(groups.output, "tier=front")) << groups.output;
  EXPECT_EQ(a.lab({"group", "delete", "all"}).exit_code, 0);
  EXPECT_EQ(a.lab({"group", "delete", "all"}).exit_code, 1);

  // Secrets: the value from stdin or a file, never printed back.
  const std::string value = "pa55-Very-Secret-Value-7731";
  auto set = sh("printf '%s' '" + value + "' | LAB_DATA_DIR='" + a.data_dir().string() + "' '" +
                lab_binary().string() + "' secret set dbpass --entitlement role=db");
  EXPECT_EQ(set.exit_code, 0) << set.output;
  const auto file = a.dir().write("value.txt", value + "-2");
  EXPECT_EQ(a.lab({"secret", "set", "other", "--from-file", file.string()}).exit_code, 0);
  EXPECT_EQ(a.lab({"secret", "grant", "other", "role=web"}).exit_code, 0);
  auto secrets = a.lab({"secret", "list"});
  EXPECT_EQ(secrets.exit_code, 0);
  EXPECT_TRUE(contains(secrets.output, "dbpass"));
  EXPECT_TRUE(contains(secrets.output, "role=db"));
  auto secrets_json = a.lab({"secret", "list", "--output", "json"});
  for (const auto& out : {set.output, secrets.output, secrets_json.output})
    EXPECT_FALSE(contains(out, value)) << out;
  auto empty = sh("LAB_DATA_DIR='" + a.data_dir().string() + "' '" + lab_binary().string() +
                  "' secret set nothing < /dev/null");
  EXPECT_EQ(empty.exit_code, 2) << empty.output;
  EXPECT_EQ(a.lab({"secret", "delete", "other"}).exit_code, 0);
  EXPECT_EQ(a.lab({"secret", "delete", "other"}).exit_code, 1);

  // Revoke and accept.
  EXPECT_EQ(a.lab({"node", "revoke", db->id}).exit_code, 0);
  auto revoked = a.lab_json({"node", "show", db->id});
  EXPECT_EQ(revoked.at("state").as_string(), "revoked");

  auto audit = a.lab({"audit", "list", "--limit", "1000"});
  EXPECT_EQ(audit.exit_code, 0);
  EXPECT_FALSE(contains(audit.output, value));
  EXPECT_EQ(a.lab({"audit", "verify"}).exit_code, 0);
}

TEST(CoordinatorCli, MachineTimelineAnswersFromTheRecorder) {
  Appliance a;
  auto unknown = a.lab({"machine", "timeline", "52:54:00:12:34:56"});
  EXPECT_EQ(unknown.exit_code, 1) << unknown.output;
  EXPECT_TRUE(contains(unknown.output, "no boot recorded for 52:54:00:12:34:56")) << unknown.output;
  auto bad = a.lab({"machine", "timeline", "not-a-mac"});
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_TRUE(contains(bad.output, "MAC")) << bad.output;
  EXPECT_EQ(a.lab({"machine", "timeline"}).exit_code, 2);
}

// The HTTP boot server mints its boot tokens through the coordinator and reports to the
// recorder; the operator reads both back through the API.
TEST(CoordinatorCli, AnHttpBootIsOnTheMachineTimelineAndMintsABootToken) {
  const auto http_port = std::to_string(free_loopback_port());
  Appliance a({"httpboot.enabled=true", "httpboot.listen=127.0.0.1:" + http_port});
  const std::vector<std::string> fetch = {
      "curl", "-sS", "--max-time", "30",
      "http://127.0.0.1:" + http_port + "/boot/52-54-00-AB-CD-EF.ipxe"};
  // No DHCP of ours leased to this MAC and no operator registered it: no token for it.
  auto refused = run(fetch);
  EXPECT_TRUE(contains(refused.output, "forbidden")) << refused.output;
  EXPECT_TRUE(a.lab_json({"token", "list"}).as_array().empty());
  auto registered = a.curl({"-X", "PUT", "-H", "Authorization: Bearer " + a.operator_token(), "-H",
                            "Content-Type: application/json", "--data", R"({"ip":"127.0.0.1"})"},
                           "/v1/machines/52:54:00:ab:cd:ef");
  ASSERT_EQ(registered.status, 200) << registered.body;
  auto script = run(fetch);
  ASSERT_EQ(script.exit_code, 0) << script.output;
  EXPECT_TRUE(contains(script.output, "#!ipxe")) << script.output;

  auto timeline = a.lab({"machine", "timeline", "52:54:00:ab:cd:ef"});
  EXPECT_EQ(timeline.exit_code, 0) << timeline.output;
  EXPECT_TRUE(contains(timeline.output, "script-render")) << timeline.output;
  auto json_timeline = a.lab_json({"machine", "timeline", "52-54-00-ab-cd-ef"});
  EXPECT_EQ(json_timeline.at("mac").as_string(), "52:54:00:ab:cd:ef");
  EXPECT_FALSE(json_timeline.at("events").as_array().empty());

  auto tokens = a.lab_json({"token", "list"});
  ASSERT_EQ(tokens.as_array().size(), 1U) << shared::json::to_string(tokens);
  EXPECT_EQ(tokens.as_array()[0].at("kind").as_string(), "boot");
  EXPECT_EQ(tokens.as_array()[0].at("bind").at("mac").as_string(), "52:54:00:ab:cd:ef");
}

TEST(CoordinatorCli, MachineTimelineIs404WithoutARecorder) {
  Appliance a({"recorder.enabled=false"});
  auto r = a.lab({"machine", "timeline", "52:54:00:12:34:56"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "runs no boot flight recorder")) << r.output;
}

TEST(CoordinatorCli, OperatorRoutesNeedTheOperatorToken) {
  Appliance a;
  const std::vector<std::pair<std::string, std::string>> routes = {
      {"GET", "/v1/tokens"},
      {"POST", "/v1/tokens"},
      {"GET", "/v1/nodes"},
      {"GET", "/v1/nodes/x"},
      {"GET", "/v1/groups"},
      {"PUT", "/v1/groups/g"},
      {"GET", "/v1/secrets"},
      {"PUT", "/v1/secrets/s"},
      {"GET", "/v1/audit"},
      {"GET", "/v1/audit/verify"},
      {"GET", "/metrics"},
      {"DELETE", "/v1/tokens/x"},
      {"GET", "/v1/machines/52:54:00:00:00:01/timeline"},
  };
  for (const auto& [method, path] : routes) {
    auto none = a.curl({"-X", method}, path);
    EXPECT_EQ(none.status, 401) << method << " " << path;
    EXPECT_EQ(none.body, R"({"error":"authentication required","code":"unauthorized"})");
    auto wrong = a.curl({"-X", method, "-H", "Authorization: Bearer lab-op-wrong"}, path);
    EXPECT_EQ(wrong.status, 401) << method << " " << path;
    EXPECT_EQ(wrong.body,
              R"({"error":"operator credential not recognised","code":"unauthorized"})");
    auto basic = a.curl({"-X", method, "-u", "operator:" + a.operator_token()}, path);
    EXPECT_EQ(basic.status, 401) << method << " " << path;
  }
  auto ok = a.curl({"-H", "Authorization: Bearer " + a.operator_token()}, "/v1/tokens");
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, "[]");

  // The CLI with a wrong token: exit 1, a hint, and nothing about the real token.
  const auto bad = a.dir().write("bad.token", "lab-op-nope\n");
  auto r = a.lab({"node", "list", "--token-file", bad.string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.output, "token")) << r.output;
  EXPECT_FALSE(contains(r.output, a.operator_token()));
  auto env_token = a.lab({"node", "list"}, {{"LAB_TOKEN", "lab-op-nope"}});
  EXPECT_EQ(env_token.exit_code, 1);

  // Without a CA file to pin, the CLI refuses to connect at all.
  auto no_ca = a.lab({"node", "list", "--ca", (a.dir() / "missing.pem").string()});
  EXPECT_EQ(no_ca.exit_code, 1);
  // Against a CA that did not sign the server certificate, TLS fails.
  const TestPki foreign("lab coordinator CA");
  const auto other_ca = a.dir().write("other.pem", foreign.ca.pem());
  auto wrong_ca = a.lab({"node", "list", "--ca", other_ca.string()});
  EXPECT_EQ(wrong_ca.exit_code, 1) << wrong_ca.output;

  // Metrics for the operator.
  auto metrics = a.curl({"-H", "Authorization: Bearer " + a.operator_token()}, "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_TRUE(contains(metrics.body, "lab_api_requests_total")) << metrics.body;
  // Process memory: resident bytes and the heap's live/free split, each a positive number.
  for (const std::string name :
       {"lab_process_resident_bytes ", "lab_process_heap_bytes{state=\"in_use\"} ",
        "lab_process_heap_bytes{state=\"free\"} "}) {
    const auto at = metrics.body.find("\n" + name);
    ASSERT_NE(at, std::string::npos) << name << "\n" << metrics.body;
    const auto value = std::stoull(metrics.body.substr(at + 1 + name.size()));
    if (name.starts_with("lab_process_resident")) {
      EXPECT_GT(value, 1024U * 1024U) << name;
    }
  }
}

}  // namespace
}  // namespace lab::tests::coordinator
