// -o/--output, and documents printed the way it asks.
#include "shared/cli/cli.hpp"
#include "shared/json/json.hpp"
#include "shared/yaml/yaml.hpp"

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <map>

namespace lab::shared::cli {

void add_output_option(CLI::App& app, Output& output) {
  static const std::map<std::string, Output> kNames{{"text", Output::text},
                                                    {"table", Output::text},
                                                    {"wide", Output::wide},
                                                    {"json", Output::json},
                                                    {"yaml", Output::yaml}};
  app.add_option("-o,--output", output, "text (or table), wide, json or yaml")
      ->transform(CLI::CheckedTransformer(kNames))
      ->option_text("FORMAT");
}

void print_document(const boost::json::value& document, Output output) {
  if (output == Output::yaml) {
    auto y = yaml::to_yaml(document);
    if (y) {
      fmt::print("{}", *y);
      return;
    }
    fmt::print(stderr, "{}\n", y.error().message());
  }
  fmt::print("{}\n", json::pretty(document));
}

}  // namespace lab::shared::cli
