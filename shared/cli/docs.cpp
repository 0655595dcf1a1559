// Completion scripts, manual pages and --help additions, all read off the CLI11 command tree.
#include "shared/cli/docs.hpp"

#include "shared/version/version.hpp"

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <system_error>

namespace lab::shared::cli {
namespace {

// What a command said in its footer before examples and inherited options were added, and its
// examples: kept apart so that manual pages can put each in its own section.
struct Notes {
  std::string footer;
  std::vector<std::string> examples;
  std::string inherited;
};
std::map<const CLI::App*, Notes>& notes() {
  static std::map<const CLI::App*, Notes> all;
  return all;
}
Notes& notes_of(CLI::App& app) {
  auto [it, added] = notes().try_emplace(&app);
  if (added)
    it->second.footer = app.get_footer();
  return it->second;
}
std::string original_footer(const CLI::App& app) {
  const auto it = notes().find(&app);
  return it == notes().end() ? app.get_footer() : it->second.footer;
}
std::vector<std::string> examples_of(const CLI::App& app) {
  const auto it = notes().find(&app);
  return it == notes().end() ? std::vector<std::string>{} : it->second.examples;
}
void refresh_footer(CLI::App& app) {
  const Notes& n = notes_of(app);
  std::string footer = n.footer;
  if (!n.examples.empty()) {
    footer += footer.empty() ? "" : "\n\n";
    footer += n.examples.size() == 1 ? "Example:" : "Examples:";
    for (const auto& e : n.examples)
      footer += "\n  " + e;
  }
  if (!n.inherited.empty())
    footer += (footer.empty() ? "" : "\n\n") + n.inherited;
  app.footer(footer);
}

bool visible(const CLI::App* app) {
  return !app->get_group().empty() && !app->get_name().empty();
}

std::vector<const CLI::App*> children(const CLI::App& app) {
  return app.get_subcommands([](const CLI::App* s) { return visible(s); });
}

std::vector<const CLI::Option*> own_options(const CLI::App& app) {
  return app.get_options([](const CLI::Option* o) { return !o->get_group().empty(); });
}

bool is_flag(const CLI::Option& o) {
  return o.get_type_size_max() == 0;
}

bool named(const CLI::Option& o) {
  return o.nonpositional();
}

bool help_or_version(const CLI::Option& o) {
  for (const auto& l : o.get_lnames()) {
    if (l == "help" || l == "version" || l == "help-all")
      return true;
  }
  return false;
}

// The options of the commands above `app` that reach it: each command with fallthrough hands
// what it does not know to its parent.
std::vector<const CLI::Option*> inherited_options(const CLI::App& app) {
  std::vector<const CLI::Option*> out;
  const CLI::App* child = &app;
  for (const CLI::App* p = app.get_parent(); p != nullptr; p = p->get_parent()) {
    if (!child->get_fallthrough())
      break;
    for (const CLI::Option* o : own_options(*p)) {
      if (named(*o) && !help_or_version(*o))
        out.push_back(o);
    }
    child = p;
  }
  return out;
}

// The options a shell completes at `app`: its own named ones, then those it inherits.
std::vector<const CLI::Option*> completable_options(const CLI::App& app) {
  std::vector<const CLI::Option*> out;
  for (const CLI::Option* o : own_options(app)) {
    if (named(*o))
      out.push_back(o);
  }
  for (const CLI::Option* o : inherited_options(app))
    out.push_back(o);
  return out;
}

// "-o, --output FORMAT".
std::string option_names(const CLI::Option& o) {
  std::string out;
  for (const auto& s : o.get_snames())
    out += (out.empty() ? "-" : ", -") + s;
  for (const auto& l : o.get_lnames())
    out += (out.empty() ? "--" : ", --") + l;
  if (!is_flag(o)) {
    const std::string text = o.get_option_text().empty() ? o.get_type_name() : o.get_option_text();
    if (!text.empty())
      out += " " + text.substr(0, text.find(':'));
  }
  return out;
}

std::vector<std::string> option_words(const CLI::Option& o) {
  std::vector<std::string> words;
  for (const auto& s : o.get_snames())
    words.push_back("-" + s);
  for (const auto& l : o.get_lnames())
    words.push_back("--" + l);
  return words;
}

// Every command with the path to it ("lab node list"), depth first.
void walk(const CLI::App& app, const std::string& path,
          const std::function<void(const CLI::App&, const std::string&)>& visit) {
  visit(app, path);
  for (const CLI::App* sub : children(app))
    walk(*sub, path + " " + sub->get_name(), visit);
}

std::string join(const std::vector<std::string>& words, std::string_view sep = " ") {
  std::string out;
  for (const auto& w : words)
    out += (out.empty() ? "" : std::string(sep)) + w;
  return out;
}

// Words completed at each command path: its subcommands, and its own and inherited options.
struct Level {
  std::string path;
  std::vector<std::string> commands;
  std::vector<std::string> options;
};

std::vector<Level> levels(const CLI::App& app) {
  std::vector<Level> out;
  walk(app, app.get_name(), [&](const CLI::App& a, const std::string& path) {
    Level l;
    l.path = path;
    for (const CLI::App* sub : children(a))
      l.commands.push_back(sub->get_name());
    for (const CLI::Option* o : completable_options(a)) {
      for (auto& w : option_words(*o))
        l.options.push_back(std::move(w));
    }
    out.push_back(std::move(l));
  });
  return out;
}

std::string identifier(std::string_view program) {
  std::string out;
  for (const char c : program)
    out += (std::isalnum(static_cast<unsigned char>(c)) != 0) ? c : '_';
  return out;
}

constexpr std::string_view kOutputValues = "text table wide json yaml";

std::string bash_script(const CLI::App& app) {
  const std::string id = identifier(app.get_name());
  std::string s = fmt::format(
      "# bash completion for {0}, generated from its command tree by '{0} completion bash'.\n",
      app.get_name());
  s += fmt::format("declare -gA _{0}_commands=(\n", id);
  for (const auto& l : levels(app))
    s += fmt::format("  [\"{}\"]=\"{}\"\n", l.path, join(l.commands));
  s += ")\n";
  s += fmt::format("declare -gA _{0}_options=(\n", id);
  for (const auto& l : levels(app))
    s += fmt::format("  [\"{}\"]=\"{}\"\n", l.path, join(l.options));
  s += ")\n";
  s += fmt::format(
      "_{0}_complete() {{\n"
      "  local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}}\n"
      "  local path={1} next i\n"
      "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
      "    next=\"$path ${{COMP_WORDS[i]}}\"\n"
      "    [[ -n ${{_{0}_commands[$next]+set}} ]] && path=$next\n"
      "  done\n"
      "  if [[ $prev == -o || $prev == --output ]]; then\n"
      "    mapfile -t COMPREPLY < <(compgen -W \"{2}\" -- \"$cur\")\n"
      "  elif [[ $cur == -* ]]; then\n"
      "    mapfile -t COMPREPLY < <(compgen -W \"${{_{0}_options[$path]}}\" -- \"$cur\")\n"
      "  else\n"
      "    mapfile -t COMPREPLY < <(compgen -W \"${{_{0}_commands[$path]}}\" -- \"$cur\")\n"
      "  fi\n"
      "}}\n"
      "complete -o default -F _{0}_complete {1}\n",
      id, app.get_name(), kOutputValues);
  return s;
}

std::string zsh_script(const CLI::App& app) {
  const std::string id = identifier(app.get_name());
  std::string s = fmt::format(
      "#compdef {0}\n"
      "# zsh completion for {0}, generated from its command tree by '{0} completion zsh'.\n"
      "_{1}() {{\n"
      "  local -A cmds opts\n"
      "  cmds=(\n",
      app.get_name(), id);
  for (const auto& l : levels(app))
    s += fmt::format("    '{}' '{}'\n", l.path, join(l.commands));
  s += "  )\n  opts=(\n";
  for (const auto& l : levels(app))
    s += fmt::format("    '{}' '{}'\n", l.path, join(l.options));
  s += fmt::format(
      "  )\n"
      "  local cmdpath={0} next i\n"
      "  for ((i = 2; i < CURRENT; i++)); do\n"
      "    next=\"$cmdpath ${{words[i]}}\"\n"
      "    (( ${{+cmds[$next]}} )) && cmdpath=$next\n"
      "  done\n"
      "  if [[ ${{words[CURRENT-1]}} == (-o|--output) ]]; then\n"
      "    compadd -- {1}\n"
      "  elif [[ ${{words[CURRENT]}} == -* ]]; then\n"
      "    compadd -- ${{=opts[$cmdpath]}}\n"
      "  else\n"
      "    compadd -- ${{=cmds[$cmdpath]}}\n"
      "  fi\n"
      "}}\n"
      "_{2} \"$@\"\n",
      app.get_name(), kOutputValues, id);
  return s;
}

std::string fish_quote(std::string_view text) {
  std::string out = "'";
  for (const char c : text) {
    if (c == '\'' || c == '\\')
      out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  return out + "'";
}

std::string fish_script(const CLI::App& app) {
  const std::string& prog = app.get_name();
  const std::string id = identifier(prog);
  std::string s = fmt::format(
      "# fish completion for {0}, generated from its command tree by '{0} completion fish'.\n"
      "set -g __{1}_paths",
      prog, id);
  const auto all = levels(app);
  for (const auto& l : all)
    s += " " + fish_quote(l.path);
  s += fmt::format(
      "\n"
      "function __{0}_path\n"
      "  set -l words (commandline -opc)\n"
      "  set -l path {1}\n"
      "  for w in $words[2..-1]\n"
      "    if contains -- \"$path $w\" $__{0}_paths\n"
      "      set path \"$path $w\"\n"
      "    end\n"
      "  end\n"
      "  echo $path\n"
      "end\n"
      "complete -c {1} -f\n"
      "complete -c {1} -n '__fish_seen_argument -s o -l output' -x -a '{2}'\n",
      id, prog, kOutputValues);
  walk(app, prog, [&](const CLI::App& a, const std::string& path) {
    const std::string cond = fish_quote("test (__" + id + "_path) = " + fish_quote(path));
    for (const CLI::App* sub : children(a)) {
      s += fmt::format("complete -c {} -n {} -a {} -d {}\n", prog, cond,
                       fish_quote(sub->get_name()), fish_quote(sub->get_description()));
    }
    for (const CLI::Option* o : completable_options(a)) {
      std::string line = fmt::format("complete -c {} -n {}", prog, cond);
      for (const auto& sn : o->get_snames())
        line += " -s " + sn;
      for (const auto& ln : o->get_lnames())
        line += " -l " + ln;
      if (!is_flag(*o))
        line += " -r";
      s += line + " -d " + fish_quote(o->get_description()) + "\n";
    }
  });
  return s;
}

// roff: a backslash is \e, a hyphen-minus \-, and a line may not start with '.' or '\''.
std::string roff(std::string_view text) {
  std::string out;
  bool line_start = true;
  for (const char c : text) {
    if (line_start && (c == '.' || c == '\''))
      out += "\\&";
    if (c == '\\')
      out += "\\e";
    else if (c == '-')
      out += "\\-";
    else
      out += c;
    line_start = c == '\n';
  }
  return out;
}

// A footer as paragraphs; lines indented by two spaces (examples, lists) kept as they are.
std::string roff_paragraphs(std::string_view text) {
  std::string out;
  std::size_t start = 0;
  bool in_block = false;
  while (start <= text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos)
      end = text.size();
    const std::string_view line = text.substr(start, end - start);
    const bool indented = line.starts_with("  ");
    if (line.empty()) {
      if (in_block)
        out += ".fi\n";
      in_block = false;
      out += ".PP\n";
    } else if (indented) {
      if (!in_block)
        out += ".nf\n";
      in_block = true;
      out += roff(line) + "\n";
    } else {
      if (in_block)
        out += ".fi\n";
      in_block = false;
      out += roff(line) + "\n";
    }
    start = end + 1;
  }
  if (in_block)
    out += ".fi\n";
  return out;
}

std::string page_name(const std::string& path) {
  std::string out = path;
  for (char& c : out) {
    if (c == ' ')
      c = '-';
  }
  return out;
}

void options_section(std::string& page, const std::vector<const CLI::Option*>& opts) {
  for (const CLI::Option* o : opts) {
    page += ".TP\n.B " + roff(option_names(*o)) + "\n" + roff(o->get_description()) + "\n";
  }
}

std::string manual_page(const CLI::App& app, const std::string& path, const std::string& program) {
  const std::string name = page_name(path);
  std::string upper = name;
  for (char& c : upper)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::string p = fmt::format(".TH \"{}\" \"1\" \"\" \"{} {}\" \"User Commands\"\n", roff(upper),
                              program, kVersion);
  std::string description = app.get_description();
  p += ".SH NAME\n" + roff(name) + " \\- " + roff(description.substr(0, description.find('\n'))) +
       "\n";
  std::string synopsis = ".SH SYNOPSIS\n.B " + roff(path) + "\n";
  std::vector<const CLI::Option*> positionals;
  std::vector<const CLI::Option*> options;
  for (const CLI::Option* o : own_options(app)) {
    if (named(*o))
      options.push_back(o);
    else
      positionals.push_back(o);
  }
  synopsis += "[\\fIOPTIONS\\fR]";
  const auto subs = children(app);
  if (!subs.empty())
    synopsis += " \\fICOMMAND\\fR";
  for (const CLI::Option* o : positionals) {
    const std::string arg = "\\fI" + roff(o->get_name(true)) + "\\fR";
    synopsis += " " + (o->get_required() ? arg : "[" + arg + "]");
    if (o->get_items_expected_max() > 1)
      synopsis += "...";
  }
  p += synopsis + "\n";
  p += ".SH DESCRIPTION\n" + roff_paragraphs(description);
  if (const std::string footer = original_footer(app); !footer.empty())
    p += ".PP\n" + roff_paragraphs(footer);
  if (!subs.empty()) {
    p += ".SH COMMANDS\n";
    for (const CLI::App* sub : subs) {
      p += ".TP\n.B " + roff(sub->get_name()) + "\n" + roff(sub->get_description()) +
           " (see\n.BR " + roff(page_name(path + " " + sub->get_name())) + " (1))\n";
    }
  }
  if (!positionals.empty()) {
    p += ".SH ARGUMENTS\n";
    for (const CLI::Option* o : positionals)
      p += ".TP\n.I " + roff(o->get_name(true)) + "\n" + roff(o->get_description()) + "\n";
  }
  p += ".SH OPTIONS\n";
  options_section(p, options);
  if (const auto inherited = inherited_options(app); !inherited.empty()) {
    p += ".SS \"Options of the commands above (accepted here too)\"\n";
    options_section(p, inherited);
  }
  if (const auto examples = examples_of(app); !examples.empty()) {
    p += ".SH EXAMPLES\n.nf\n";
    for (const auto& e : examples)
      p += roff(e) + "\n";
    p += ".fi\n";
  }
  p += ".SH \"EXIT STATUS\"\n0 success, 1 failure, 2 usage error (a bad flag, value or "
       "configuration); a command may document more.\n";
  std::vector<std::string> see;
  std::string up = path;
  while (up.rfind(' ') != std::string::npos) {
    up = up.substr(0, up.rfind(' '));
    see.insert(see.begin(), page_name(up));
  }
  if (!see.empty()) {
    p += ".SH \"SEE ALSO\"\n";
    for (std::size_t i = 0; i < see.size(); ++i)
      p += ".BR " + roff(see[i]) + " (1)" + (i + 1 < see.size() ? ",\n" : "\n");
  }
  return p;
}

}  // namespace

std::string completion_script(const CLI::App& app, std::string_view shell) {
  if (shell == "bash")
    return bash_script(app);
  if (shell == "zsh")
    return zsh_script(app);
  if (shell == "fish")
    return fish_script(app);
  return {};
}

std::vector<std::pair<std::string, std::string>> manual_pages(const CLI::App& app) {
  std::vector<std::pair<std::string, std::string>> pages;
  walk(app, app.get_name(), [&](const CLI::App& a, const std::string& path) {
    if (a.get_name() == "man" || a.get_name() == "completion" || a.get_name() == "help") {
      if (a.get_parent() == &app)
        return;
    }
    pages.emplace_back(page_name(path) + ".1", manual_page(a, path, app.get_name()));
  });
  return pages;
}

void add_docs_commands(CLI::App& app, Action& action) {
  auto shell = std::make_shared<std::string>();
  CLI::App* completion = app.add_subcommand(
      "completion", "Print a shell completion script (bash, zsh or fish) for " + app.get_name());
  completion->add_option("shell", *shell, "bash, zsh or fish")
      ->required()
      ->check(CLI::IsMember({"bash", "zsh", "fish"}));
  completion->callback([&app, &action, shell] {
    action = [&app, shell] {
      fmt::print("{}", completion_script(app, *shell));
      return kExitOk;
    };
  });
  add_example(*completion, "source <(" + app.get_name() + " completion bash)");

  auto dir = std::make_shared<std::string>();
  CLI::App* man = app.add_subcommand(
      "man", "Write the manual pages of every " + app.get_name() + " command into a directory");
  man->add_option("--out", *dir, "the directory (created when missing)")->required();
  man->callback([&app, &action, dir] {
    action = [&app, dir] {
      std::error_code ec;
      std::filesystem::create_directories(*dir, ec);
      if (ec) {
        print_error(app.get_name(), "cannot create " + *dir + ": " + ec.message());
        return kExitFailure;
      }
      for (const auto& [file, text] : manual_pages(app)) {
        const auto path = std::filesystem::path(*dir) / file;
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << text;
        if (!out.flush()) {
          print_error(app.get_name(), "cannot write " + path.string());
          return kExitFailure;
        }
      }
      return kExitOk;
    };
  });
}

void add_example(CLI::App& command, std::string_view example) {
  notes_of(command).examples.emplace_back(example);
  refresh_footer(command);
}

void describe_inherited_options(CLI::App& app) {
  walk(app, app.get_name(), [](const CLI::App& a, const std::string&) {
    const auto inherited = inherited_options(a);
    if (inherited.empty())
      return;
    // The tree is ours: the walk hands out const views of commands it may annotate.
    auto& command = const_cast<CLI::App&>(a);  // NOLINT(cppcoreguidelines-pro-type-const-cast)
    std::string text = "Options of the commands above, accepted here too:";
    for (const CLI::Option* o : inherited)
      text += fmt::format("\n  {:<26} {}", option_names(*o), o->get_description());
    notes_of(command).inherited = text;
    refresh_footer(command);
  });
}

}  // namespace lab::shared::cli
