// Inbound parse cost: how long the daemon's loop spends on one big command before it can do
// anything else (DESIGN §5: one client must not stall the others). Measures, per MB of input,
// the envelope parser (validation against the command table) and what follows it for a
// command with an id: the outcome fingerprint and the agent-bound command.
//   build/release/bench/parse-bench [--mb N] [--rounds R]
#include <chrono>
#include <cstdio>
#include <string>

#include "protocol/envelope.hpp"
#include "protocol/frames.hpp"
#include "reliability/outcome_store.hpp"

using namespace pi_server;
using Steady = std::chrono::steady_clock;

namespace {

double ms_since(Steady::time_point t0) {
  return std::chrono::duration<double, std::milli>(Steady::now() - t0).count();
}

// A prompt whose payload carries `mb` MB of `what`.
std::string big_prompt(const std::string& what, std::size_t mb) {
  std::string out = R"({"type":"prompt","id":"big-1","sessionId":"s","message":)";
  std::size_t target = mb << 20;
  if (what == "string") {
    out += '"';
    while (out.size() < target) out += "lorem ipsum dolor sit amet, consectetur adipiscing elit ";
    out += R"("})";
  } else if (what == "array") {
    out += R"("hi","padding":[)";
    while (out.size() < target) out += "1234567,";
    out += R"(0]})";
  } else {  // nesting: refused at the depth limit, but only after scanning
    out += R"("hi","padding":)";
    std::size_t half = target / 2;
    out.append(half, '[');
    out.append(half, ']');
    out += "}";
  }
  return out;
}

void measure(const char* name, const std::string& text, int rounds) {
  double mb = static_cast<double>(text.size()) / (1 << 20);
  for (int r = 1; r <= rounds; ++r) {
    auto t0 = Steady::now();
    auto parsed = protocol::parse_envelope(text);
    double parse_ms = ms_since(t0);
    double fp_ms = 0, agent_ms = 0;
    if (parsed) {
      auto t1 = Steady::now();
      auto fp = reliability::fingerprint(*parsed);
      fp_ms = ms_since(t1);
      auto t2 = Steady::now();
      auto line = protocol::agent_command_line(*parsed, "pi-server-1");
      agent_ms = ms_since(t2);
      if (fp.empty() || line.empty()) std::abort();
    }
    std::printf("%-8s %6.1f MB  round %d  parse %8.1f ms (%6.1f ms/MB)  fingerprint %8.1f ms  "
                "agent line %8.1f ms  total %8.1f ms/MB  %s\n",
                name, mb, r, parse_ms, parse_ms / mb, fp_ms, agent_ms,
                (parse_ms + fp_ms + agent_ms) / mb, parsed ? "accepted" : "refused");
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t mb = 16;
  int rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--mb") mb = std::stoul(argv[i + 1]);
    if (flag == "--rounds") rounds = std::stoi(argv[i + 1]);
  }
  for (const char* what : {"string", "array", "nesting"}) measure(what, big_prompt(what, mb), rounds);
  return 0;
}
