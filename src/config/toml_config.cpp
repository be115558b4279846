// The TOML config reader and the effective-configuration printer (--print-config).
// toml++ is header-only and heavy: this is the one TU that includes it.
#include "config/toml_config.hpp"

#include <iomanip>
#include <sstream>
#include <toml++/toml.h>

namespace pi_server::config {
namespace {

std::string quote(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string where(const std::string& path, const toml::source_region& at) {
  return path + ":" + std::to_string(at.begin.line);
}

[[noreturn]] void refuse(const std::string& position, const std::string& key, const std::string& why) {
  throw CLI::ConfigError(position + ": key '" + key + "': " + why);
}

// A TOML scalar as the text CLI11 would have seen on the command line; nullopt for tables,
// arrays, dates and times.
std::optional<std::string> scalar_text(const toml::node& node) {
  if (auto s = node.as_string()) return s->get();
  if (auto i = node.as_integer()) return std::to_string(i->get());
  if (auto f = node.as_floating_point()) {
    std::ostringstream out;
    out << std::setprecision(15) << f->get();
    return out.str();
  }
  return std::nullopt;
}

std::string kind_of(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "a boolean";
    default: return "a date or time";
  }
}

bool is_flag(const CLI::Option& option) { return option.get_expected_min() == 0; }
bool is_repeatable(const CLI::Option& option) { return option.get_items_expected_max() > 1; }

}  // namespace

bool is_action_option(const CLI::Option& option) {
  return !option.get_configurable() || option.get_lnames().empty();
}

std::vector<CLI::ConfigItem> TomlConfig::from_config(std::istream& input) const {
  if (const CLI::Option* file = app_.get_config_ptr(); file && file->count() > 0)
    path_ = file->results().back();
  else
    path_ = "config file";
  lines_.clear();
  std::string text{std::istreambuf_iterator<char>(input), std::istreambuf_iterator<char>()};
  toml::table table;
  try {
    table = toml::parse(text, path_);
  } catch (const toml::parse_error& e) {
    throw CLI::ConfigError(path_ + ":" + std::to_string(e.source().begin.line) + ":" +
                           std::to_string(e.source().begin.column) + ": " +
                           std::string(e.description()));
  }

  std::vector<CLI::ConfigItem> items;
  for (auto&& [name, node] : table) {
    const std::string key(name.str());
    const std::string position = where(path_, name.source());
    const CLI::Option* option = app_.get_option_no_throw("--" + key);
    if (!option || option->get_lnames().empty() || option->get_lnames().front() != key)
      refuse(position, key, "unknown key (keys are the long flag names of pi-server --help)");
    if (is_action_option(*option)) refuse(position, key, "not allowed in a config file");

    CLI::ConfigItem item;
    item.name = key;
    if (is_flag(*option)) {
      auto b = node.as_boolean();
      if (!b) refuse(position, key, "want true or false, not " + kind_of(node));
      item.inputs = {b->get() ? "true" : "false"};
    } else if (auto array = node.as_array()) {
      if (!is_repeatable(*option)) refuse(position, key, "takes one value, not an array");
      for (const toml::node& element : *array) {
        auto value = scalar_text(element);
        if (!value) refuse(position, key, "array elements must be strings or numbers, not " + kind_of(element));
        item.inputs.push_back(*value);
      }
    } else {
      auto value = scalar_text(node);
      if (!value) refuse(position, key, "want a string or a number, not " + kind_of(node));
      item.inputs = {*value};
    }
    // A flag on the command line wins; CLI11 would skip the item too, but then the value
    // is not the file's and errors about it must not point here.
    if (option->count() > 0) continue;
    if (item.inputs.empty()) continue;  // an empty array: the default (none)
    lines_[key] = static_cast<int>(name.source().begin.line);
    items.push_back(std::move(item));
  }
  return items;
}

std::optional<std::string> TomlConfig::position_of(const std::string& key) const {
  auto it = lines_.find(key);
  if (it == lines_.end()) return std::nullopt;
  return path_ + ":" + std::to_string(it->second);
}

std::string TomlConfig::explain(const std::string& message) const {
  for (const auto& [key, line] : lines_) {
    const std::string flag = "--" + key;
    for (auto at = message.find(flag); at != std::string::npos; at = message.find(flag, at + 1)) {
      std::size_t end = at + flag.size();
      bool whole = end == message.size() || !(std::isalnum(static_cast<unsigned char>(message[end])) ||
                                              message[end] == '-');
      if (whole) return path_ + ":" + std::to_string(line) + ": key '" + key + "': " + message;
    }
  }
  return message;
}

std::vector<Setting> TomlConfig::settings(const CLI::App& app) const {
  std::vector<Setting> out;
  for (const CLI::Option* option : app.get_options()) {
    if (is_action_option(*option)) continue;
    if (option == app.get_config_ptr()) continue;
    Setting s;
    s.key = option->get_lnames().front();
    s.description = option->get_description();
    const bool secret = secrets_.whole.count(s.key) > 0;
    const bool secret_values = secrets_.after_equals.count(s.key) > 0;
    auto mask = [&](std::string value) {
      if (secret && !value.empty()) return std::string("***");
      if (secret_values)
        if (auto eq = value.find('='); eq != std::string::npos) return value.substr(0, eq + 1) + "***";
      return value;
    };
    if (is_flag(*option)) {
      bool on = false;
      if (option->count() > 0) {
        const std::string last = option->results().back();
        on = !(last == "false" || last == "0" || last == "-1" || last == "off" || last == "no");
      }
      s.value = on ? "true" : "false";
    } else if (is_repeatable(*option)) {
      s.value = "[";
      const auto& results = option->results();
      for (std::size_t i = 0; i < results.size(); ++i)
        s.value += (i ? ", " : "") + quote(mask(results[i]));
      s.value += "]";
    } else {
      std::string raw = option->count() > 0 ? option->results().back() : option->get_default_str();
      bool text = option->get_type_name().rfind("TEXT", 0) == 0 || raw.empty();
      s.value = text ? quote(mask(raw)) : raw;
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::string TomlConfig::to_config(const CLI::App* app, bool, bool write_description,
                                  std::string) const {
  std::string out;
  for (const Setting& s : settings(*app)) {
    if (write_description && !s.description.empty()) out += "# " + s.description + "\n";
    out += s.key + " = " + s.value + "\n";
    if (write_description) out += "\n";
  }
  return out;
}

}  // namespace pi_server::config
