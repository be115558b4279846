// fake-agent: a small, deterministic stand-in for the pi coding agent's headless
// RPC mode (`pi --mode rpc`, pi 0.87.1), used by pi-server's tests.
//
// Wire format (see /work/shared/pi-rpc/README.md): JSON objects, one per line, on
// stdin (commands) and stdout (responses + events). Nothing is printed before the
// first command. The text of a `prompt` picks a scripted behaviour ("stream N",
// "slow N MS", "hang", "tool", "ui", "error NNN", "crash", ...; see dispatch()).
//
// Single-threaded: one poll() loop over stdin plus one timer for the active run,
// so abort / get_state / steer / extension_ui_response are served mid-run.
// stdout is buffered in one string and written with write(2) in large chunks.
// Exits 0 on stdin EOF (at once, even mid-run); no signal handlers.

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------- output

std::string g_out;

void writeAll(int fd, const char* p, size_t n) {
    while (n > 0) {
        ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                pollfd pfd{fd, POLLOUT, 0};
                ::poll(&pfd, 1, -1);
                continue;
            }
            _exit(1);  // stdout gone (EPIPE with SIGPIPE ignored by the parent, ...)
        }
        p += w;
        n -= static_cast<size_t>(w);
    }
}

void flushOut() {
    if (g_out.empty()) return;
    writeAll(1, g_out.data(), g_out.size());
    g_out.clear();
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void emitRaw(std::string_view line) {
    g_out.append(line);
    g_out.push_back('\n');
    if (g_out.size() >= 64 * 1024) flushOut();
}

void emit(const json& j) { emitRaw(dump(j)); }

// JSON string escaping for the hot path (same output as nlohmann for valid UTF-8).
void appendJsonString(std::string& out, std::string_view s) {
    static const char* hex = "0123456789abcdef";
    out.push_back('"');
    for (unsigned char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    out += "\\u00";
                    out.push_back(hex[c >> 4]);
                    out.push_back(hex[c & 15]);
                } else {
                    out.push_back(static_cast<char>(c));
                }
        }
    }
    out.push_back('"');
}

// ---------------------------------------------------------------- helpers

long long nowMs() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::mt19937_64& rng() {
    static std::mt19937_64 r(static_cast<uint64_t>(nowMs()) ^ (static_cast<uint64_t>(getpid()) << 32) ^
                             std::random_device{}());
    return r;
}

std::string uuidFrom(uint64_t a, uint64_t b) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%08x-%04x-4%03x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                  static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xfff),
                  static_cast<unsigned>(0x8000 | ((b >> 48) & 0x3fff)),
                  static_cast<unsigned long long>(b & 0xffffffffffffULL));
    return buf;
}

std::string randomUuid() { return uuidFrom(rng()(), rng()()); }

uint64_t fnv1a(std::string_view s, uint64_t h = 1469598103934665603ULL) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
    return h;
}

std::vector<std::string> words(const std::string& s) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
        size_t j = i;
        while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j]))) ++j;
        if (j > i) out.push_back(s.substr(i, j - i));
        i = j;
    }
    return out;
}

long long numArg(const std::vector<std::string>& w, size_t i, long long def) {
    if (i >= w.size()) return def;
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(w[i].c_str(), &end, 10);
    if (errno || end == w[i].c_str() || *end) return def;
    return std::clamp(v, 0LL, 1000000000LL);
}

std::string readFile(const std::string& path, bool* ok) {
    std::string data;
    *ok = false;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return data;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        data.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    *ok = true;
    return data;
}

void writeFile(const std::string& path, const std::string& data, bool append) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);
    if (fd < 0) return;
    writeAll(fd, data.data(), data.size());
    ::close(fd);
}

void mkdirs(const std::string& dir) {
    for (size_t i = 1; i <= dir.size(); ++i) {
        if (i == dir.size() || dir[i] == '/') ::mkdir(dir.substr(0, i).c_str(), 0755);
    }
}

// ---------------------------------------------------------------- state

struct Config {
    std::string provider = "fake";
    std::string modelId = "fake-1";
    std::string thinkingLevel = "off";
    std::string steeringMode = "one-at-a-time";
    std::string followUpMode = "one-at-a-time";
    bool autoCompaction = true;
    bool autoRetry = true;
    std::string sessionDir;   // empty: in-memory only
    std::string sessionFile;  // sessionDir + "/fake-session.jsonl"
    std::string sessionId;
    std::optional<std::string> sessionName;
    std::string cwd;  // the process cwd, then the cwd a switched-to session header names (like pi)
} cfg;

std::vector<json> g_messages;  // the conversation
std::deque<std::string> g_steering, g_followUp;
uint64_t g_counter = 0;

enum class Phase { None, Streaming, UiWait };

struct Run {
    bool active = false;
    Phase phase = Phase::None;
    std::vector<json> msgs;  // messages of this run (agent_end)
    // current assistant message
    json asst;
    json usage;
    std::string updPrefix;  // {"type":"message_update","usage":{..},"assistantMessageEvent":
    std::string text;
    bool textOpen = false;
    // streaming plan
    std::vector<std::string> deltas;
    size_t next = 0;
    int intervalMs = 0;
    std::optional<Clock::time_point> due;
    // ui dialog
    std::string uiId, toolCallId;
    json toolAsst;
    std::vector<std::optional<json>> pendingAborts;  // ids of aborts waiting for the dialog
} run;

struct Cmd {
    std::optional<json> id;
    std::string type;
    const json* msg = nullptr;
};

json modelObject(const std::string& provider, const std::string& id) {
    return json{{"id", id},
                {"name", id},
                {"api", "openai-completions"},
                {"provider", provider},
                {"baseUrl", "http://127.0.0.1:9/v1"},
                {"reasoning", false},
                {"input", json::array({"text"})},
                {"cost", {{"input", 0}, {"output", 0}, {"cacheRead", 0}, {"cacheWrite", 0}}},
                {"contextWindow", 128000},
                {"maxTokens", 8192}};
}

std::vector<json> availableModels() {
    std::vector<json> v{modelObject("fake", "fake-1"), modelObject("fake", "fake-2")};
    bool found = false;
    for (auto& m : v) found |= (m["provider"] == cfg.provider && m["id"] == cfg.modelId);
    if (!found) v.insert(v.begin(), modelObject(cfg.provider, cfg.modelId));
    return v;
}

json usageZero() {
    return json{{"input", 0},       {"output", 0},      {"cacheRead", 0}, {"cacheWrite", 0}, {"totalTokens", 0},
                {"cost", {{"input", 0}, {"output", 0}, {"cacheRead", 0}, {"cacheWrite", 0}, {"total", 0}}}};
}

json usageFor(long long in, long long out) {
    return json{{"input", in},
                {"output", out},
                {"cacheRead", 0},
                {"cacheWrite", 0},
                {"reasoning", 0},
                {"totalTokens", in + out},
                {"cost", {{"input", 0}, {"output", 0}, {"cacheRead", 0}, {"cacheWrite", 0}, {"total", 0}}}};
}

json textContent(const std::string& t) { return json::array({json{{"type", "text"}, {"text", t}}}); }

// Concatenated text blocks of a message (const access only: never inserts keys).
std::string textOf(const json& msg) {
    std::string t;
    auto c = msg.find("content");
    if (c == msg.end() || !c->is_array()) return t;
    for (const json& b : *c) {
        if (!b.is_object() || b.value("type", "") != "text") continue;
        auto x = b.find("text");
        if (x != b.end() && x->is_string()) t += x->get<std::string>();
    }
    return t;
}

std::string roleOf(const json& msg) { return msg.value("role", ""); }

// ---------------------------------------------------------------- responses

void respond(const Cmd& c, bool ok, const std::optional<json>& data, const std::string& err = {}) {
    json r = json::object();
    if (c.id) r["id"] = *c.id;
    r["type"] = "response";
    r["command"] = c.type;
    r["success"] = ok;
    if (ok && data) r["data"] = *data;
    if (!ok) r["error"] = err;
    emit(r);
}
void ok(const Cmd& c, const std::optional<json>& data = std::nullopt) { respond(c, true, data); }
void fail(const Cmd& c, const std::string& err) { respond(c, false, std::nullopt, err); }

void emitQueueUpdate() {
    emit(json{{"type", "queue_update"},
              {"steering", json(std::vector<std::string>(g_steering.begin(), g_steering.end()))},
              {"followUp", json(std::vector<std::string>(g_followUp.begin(), g_followUp.end()))}});
}

// ---------------------------------------------------------------- persistence

void loadSession(const std::string& path) {
    g_messages.clear();
    bool ok = false;
    std::string data = readFile(path, &ok);
    if (!ok) return;
    size_t start = 0;
    while (start < data.size()) {
        size_t nl = data.find('\n', start);
        if (nl == std::string::npos) nl = data.size();
        json m = json::parse(data.begin() + static_cast<long>(start), data.begin() + static_cast<long>(nl), nullptr,
                             false);
        if (m.is_object() && m.contains("role")) g_messages.push_back(std::move(m));
        start = nl + 1;
    }
    if (!data.empty() && data.back() != '\n') writeFile(path, "\n", true);  // repair a torn last line
}

void persist(const json& m) {
    if (cfg.sessionFile.empty()) return;
    if (!cfg.sessionDir.empty()) mkdirs(cfg.sessionDir);
    writeFile(cfg.sessionFile, dump(m) + "\n", true);
}

void rewriteSession() {
    if (cfg.sessionFile.empty()) return;
    std::string all;
    for (auto& m : g_messages) all += dump(m) + "\n";
    writeFile(cfg.sessionFile, all, false);
}

// ---------------------------------------------------------------- run machinery

void dispatch(const std::string& text);

void completeMessage(const json& m) {
    g_messages.push_back(m);
    run.msgs.push_back(m);
    persist(m);
}

void startEnd(const json& m) {
    emit(json{{"type", "message_start"}, {"message", m}});
    emit(json{{"type", "message_end"}, {"message", m}});
}

void beginAssistant(long long inTok, long long outTok) {
    run.asst = json{{"role", "assistant"},   {"content", json::array()},  {"api", "openai-completions"},
                    {"provider", cfg.provider}, {"model", cfg.modelId},  {"usage", usageZero()},
                    {"stopReason", "pending"},  {"timestamp", nowMs()},  {"responseId", "fake-" + std::to_string(++g_counter)}};
    emit(json{{"type", "message_start"}, {"message", run.asst}});
    run.usage = usageFor(inTok, outTok);
    run.updPrefix = "{\"type\":\"message_update\",\"usage\":" + dump(run.usage) + ",\"assistantMessageEvent\":";
    run.text.clear();
    run.textOpen = false;
}

void emitUpdate(const json& ev) { emitRaw(run.updPrefix + dump(ev) + "}"); }

void textStart() {
    emitUpdate(json{{"type", "text_start"}, {"contentIndex", 0}});
    run.textOpen = true;
}

void textDelta(const std::string& d) {
    run.text += d;
    std::string line;
    line.reserve(run.updPrefix.size() + d.size() + 64);
    line += run.updPrefix;
    line += "{\"type\":\"text_delta\",\"contentIndex\":0,\"delta\":";
    appendJsonString(line, d);
    line += "}}";
    emitRaw(line);
}

void textEnd() {
    emitUpdate(json{{"type", "text_end"}, {"contentIndex", 0}, {"content", run.text}});
    run.textOpen = false;
}

// The current assistant message, completed with a stop reason.
json finalizeAssistant(const std::string& stopReason, const std::string& errorMessage = {}) {
    json a = run.asst;
    a["content"] = (stopReason == "stop" || !run.text.empty()) ? textContent(run.text) : json::array();
    a["usage"] = run.usage;
    a["stopReason"] = stopReason;
    if (stopReason == "stop") a["rawStopReason"] = "stop";
    if (!errorMessage.empty()) a["errorMessage"] = errorMessage;
    return a;
}

void endRun() {
    emit(json{{"type", "agent_end"}, {"messages", run.msgs}, {"willRetry", false}});
    emit(json{{"type", "agent_settled"}});
    run = Run{};
}

void beginTurn(const std::string& text, bool fromQueue) {
    emit(json{{"type", "turn_start"}});
    if (fromQueue) emitQueueUpdate();
    json user{{"role", "user"}, {"content", textContent(text)}, {"timestamp", nowMs()}};
    startEnd(user);
    completeMessage(user);
    dispatch(text);
}

// After a normal turn_end: deliver one queued steer / follow-up, else finish the run.
void afterTurn() {
    run.phase = Phase::None;
    run.due.reset();
    if (!g_steering.empty() || !g_followUp.empty()) {
        auto& q = g_steering.empty() ? g_followUp : g_steering;
        std::string t = q.front();
        q.pop_front();
        beginTurn(t, true);
        return;
    }
    endRun();
}

void finishStop() {
    if (run.textOpen) textEnd();
    json a = finalizeAssistant("stop");
    emit(json{{"type", "message_end"}, {"message", a}});
    completeMessage(a);
    emit(json{{"type", "turn_end"}, {"message", a}, {"toolResults", json::array()}});
    afterTurn();
}

// Aborted tail of the current assistant message (text so far kept).
void abortTail() {
    if (run.textOpen) textEnd();
    json a = finalizeAssistant("aborted", "Request was aborted");
    emit(json{{"type", "message_end"}, {"message", a}});
    completeMessage(a);
    emit(json{{"type", "turn_end"}, {"message", a}, {"toolResults", json::array()}});
    endRun();
}

// A text answer: all deltas at once (intervalMs 0), spaced by a timer, or hanging.
void textAnswer(std::vector<std::string> deltas, int intervalMs = 0, bool hang = false) {
    beginAssistant(100, static_cast<long long>(deltas.size()));
    textStart();
    if (intervalMs == 0 && !hang) {
        size_t total = 0;
        for (auto& d : deltas) total += d.size();
        run.text.reserve(total);
        for (auto& d : deltas) textDelta(d);
        finishStop();
        return;
    }
    run.phase = Phase::Streaming;
    run.deltas = std::move(deltas);
    run.intervalMs = intervalMs;
    run.next = 0;
    if (!run.deltas.empty()) textDelta(run.deltas[run.next++]);
    if (hang) return;  // nothing more until abort / EOF
    if (run.next >= run.deltas.size()) return finishStop();
    run.due = Clock::now() + std::chrono::milliseconds(intervalMs);
}

// Assistant message that calls one tool; returns it (already emitted and stored).
json toolCallMessage(const std::string& toolName, const json& args, const std::vector<std::string>& argPieces) {
    beginAssistant(120, 20);
    run.toolCallId = "call_fake" + std::to_string(++g_counter);
    emitUpdate(json{{"type", "toolcall_start"}, {"contentIndex", 0}, {"id", run.toolCallId}, {"toolName", toolName}});
    emitUpdate(json{{"type", "toolcall_delta"}, {"contentIndex", 0}, {"delta", ""}});
    for (auto& p : argPieces) emitUpdate(json{{"type", "toolcall_delta"}, {"contentIndex", 0}, {"delta", p}});
    json call{{"type", "toolCall"}, {"id", run.toolCallId}, {"name", toolName}, {"arguments", args}};
    emitUpdate(json{{"type", "toolcall_end"}, {"contentIndex", 0}, {"toolCall", call}});
    json a = run.asst;
    a["content"] = json::array({call});
    a["usage"] = run.usage;
    a["stopReason"] = "toolUse";
    a["rawStopReason"] = "tool_calls";
    emit(json{{"type", "message_end"}, {"message", a}});
    completeMessage(a);
    emit(json{{"type", "tool_execution_start"}, {"toolCallId", run.toolCallId}, {"toolName", toolName}, {"args", args}});
    return a;
}

// tool_execution_end + toolResult message + turn_end for the current tool call.
void toolResultTurnEnd(const std::string& toolName, const json& toolAsst, const std::string& out, bool details) {
    json result{{"content", textContent(out)}};
    if (details) result["details"] = json::object();
    emit(json{{"type", "tool_execution_end"},
              {"toolCallId", run.toolCallId},
              {"toolName", toolName},
              {"result", result},
              {"isError", false}});
    json tr{{"role", "toolResult"}, {"toolCallId", run.toolCallId}, {"toolName", toolName}, {"content", textContent(out)}};
    if (details) tr["details"] = json::object();
    tr["isError"] = false;
    tr["timestamp"] = nowMs();
    startEnd(tr);
    completeMessage(tr);
    emit(json{{"type", "turn_end"}, {"message", toolAsst}, {"toolResults", json::array({tr})}});
}

void scriptTool() {
    json args{{"command", "echo hi"}};
    json a = toolCallMessage("bash", args, {"{\"command\"", ":\"echo hi\"}"});
    emit(json{{"type", "tool_execution_update"},
              {"toolCallId", run.toolCallId},
              {"toolName", "bash"},
              {"args", args},
              {"partialResult", {{"content", json::array()}}}});
    emit(json{{"type", "tool_execution_update"},
              {"toolCallId", run.toolCallId},
              {"toolName", "bash"},
              {"args", args},
              {"partialResult", {{"content", textContent("hi\n")}, {"details", json::object()}}}});
    toolResultTurnEnd("bash", a, "hi\n", false);
    emit(json{{"type", "turn_start"}});
    textAnswer({"Tool said: ", "\"hi\"", ". Done."});
}

void scriptUi(long long timeoutMs) {
    json args{{"question", "Pick one"}};
    run.toolAsst = toolCallMessage("ui_ask", args, {"{\"question\":", "\"Pick one\"}"});
    run.uiId = randomUuid();
    json req{{"type", "extension_ui_request"}, {"id", run.uiId}, {"method", "select"}, {"title", "Pick one"},
             {"options", json::array({"red", "green", "blue"})}};
    if (timeoutMs > 0) req["timeout"] = timeoutMs;
    emit(req);
    run.phase = Phase::UiWait;
    if (timeoutMs > 0) run.due = Clock::now() + std::chrono::milliseconds(timeoutMs);
}

// The dialog was answered (or timed out): finish the tool, then answer or abort.
void resolveUi(const std::string& answer) {
    run.phase = Phase::None;
    run.due.reset();
    run.uiId.clear();
    toolResultTurnEnd("ui_ask", run.toolAsst, answer, true);
    emit(json{{"type", "turn_start"}});
    if (!run.pendingAborts.empty()) {
        auto aborts = std::move(run.pendingAborts);
        beginAssistant(0, 0);
        abortTail();
        for (auto& id : aborts) ok(Cmd{id, "abort", nullptr});
        return;
    }
    textAnswer({answer});
}

void scriptError(const std::string& code) {
    json a{{"role", "assistant"},
           {"content", json::array()},
           {"api", "openai-completions"},
           {"provider", cfg.provider},
           {"model", cfg.modelId},
           {"usage", usageZero()},
           {"stopReason", "error"},
           {"timestamp", nowMs()},
           {"errorMessage", code + ": {\"message\":\"fake error " + code + "\"}"}};
    startEnd(a);
    completeMessage(a);
    emit(json{{"type", "turn_end"}, {"message", a}, {"toolResults", json::array()}});
    endRun();
}

[[noreturn]] void scriptCrash(bool sigkill, int code) {
    beginAssistant(100, 2);
    textStart();
    textDelta("partial ");
    textDelta("answer ");
    flushOut();
    if (sigkill) ::kill(::getpid(), SIGKILL);
    _exit(code);
}

std::string fdsText() {
    std::vector<int> fds;
    if (DIR* d = ::opendir("/proc/self/fd")) {
        int own = ::dirfd(d);
        while (dirent* e = ::readdir(d)) {
            if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
            int fd = std::atoi(e->d_name);
            if (fd != own) fds.push_back(fd);
        }
        ::closedir(d);
    }
    std::sort(fds.begin(), fds.end());
    std::string s = "fds: ";
    for (size_t i = 0; i < fds.size(); ++i) s += (i ? "," : "") + std::to_string(fds[i]);
    return s;
}

void okAnswer(const std::string& text) { textAnswer({"ok: ", text, "."}); }

// Pick the behaviour from the first word of the user text and run the assistant side.
void dispatch(const std::string& text) {
    auto w = words(text);
    std::string cmd = w.empty() ? "" : w[0];
    if (cmd == "stream" || cmd == "flood") {
        long long n = numArg(w, 1, 5);
        std::vector<std::string> d;
        d.reserve(static_cast<size_t>(n));
        for (long long i = 0; i < n; ++i) d.push_back(cmd == "flood" ? "f" : "w" + std::to_string(i) + " ");
        textAnswer(std::move(d));
    } else if (cmd == "slow") {
        long long n = numArg(w, 1, 5), ms = numArg(w, 2, 100);
        std::vector<std::string> d;
        for (long long i = 0; i < n; ++i) d.push_back("s" + std::to_string(i) + " ");
        textAnswer(std::move(d), static_cast<int>(std::max(1LL, ms)));
    } else if (cmd == "hang") {
        textAnswer({"hanging..."}, 0, true);
    } else if (cmd == "crash" || cmd == "sigkill") {
        scriptCrash(cmd == "sigkill", static_cast<int>(numArg(w, 1, 3)));
    } else if (cmd == "tool") {
        scriptTool();
    } else if (cmd == "error") {
        scriptError(w.size() > 1 ? w[1] : "500");
    } else if (cmd == "ui") {
        scriptUi(w.size() > 1 && w[1] == "timeout" ? std::max(1LL, numArg(w, 2, 1000)) : 0);
    } else if (cmd == "fds") {
        textAnswer({fdsText()});
    } else if (cmd == "cwd") {
        textAnswer({"cwd " + cfg.cwd});
    } else if (cmd == "env" && w.size() > 1) {
        const char* v = std::getenv(w[1].c_str());
        textAnswer({v ? "env " + w[1] + "=" + v : "env " + w[1] + " unset"});
    } else if (cmd == "garbage") {
        emitRaw("this is not json");
        okAnswer(text);
    } else if (cmd == "big") {
        textAnswer({std::string(static_cast<size_t>(numArg(w, 1, 1000)), 'x')});
    } else if (cmd == "stderr") {
        long long n = numArg(w, 1, 1);
        std::string err;
        for (long long i = 0; i < n; ++i) err += "fake stderr line " + std::to_string(i) + "\n";
        writeAll(2, err.data(), err.size());
        okAnswer(text);
    } else if (cmd == "u2028") {
        textAnswer({"line\xE2\x80\xA8", "sep\xE2\x80\xA9", "para"});
    } else if (cmd == "exit") {
        flushOut();
        std::exit(static_cast<int>(numArg(w, 1, 0)));
    } else {
        okAnswer(text);
    }
}

void onTimer() {
    run.due.reset();
    if (run.phase == Phase::UiWait) {
        resolveUi("picked nothing");  // dialog timeout: no line for the timeout itself
    } else if (run.phase == Phase::Streaming) {
        textDelta(run.deltas[run.next++]);
        if (run.next >= run.deltas.size()) return finishStop();
        run.due = Clock::now() + std::chrono::milliseconds(run.intervalMs);
    }
}

// ---------------------------------------------------------------- commands

std::optional<std::string> str(const json& m, const char* key) {
    auto it = m.find(key);
    if (it == m.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
}

std::string lastAssistantText() {
    for (auto it = g_messages.rbegin(); it != g_messages.rend(); ++it) {
        if (roleOf(*it) != "assistant") continue;
        std::string t = textOf(*it);
        while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
        if (!t.empty()) return t;
    }
    return {};
}

json stateData() {
    json d{{"model", modelObject(cfg.provider, cfg.modelId)},
           {"thinkingLevel", cfg.thinkingLevel},
           {"isStreaming", run.active},
           {"isCompacting", false},
           {"steeringMode", cfg.steeringMode},
           {"followUpMode", cfg.followUpMode}};
    if (!cfg.sessionFile.empty()) d["sessionFile"] = cfg.sessionFile;
    d["sessionId"] = cfg.sessionId;
    if (cfg.sessionName) d["sessionName"] = *cfg.sessionName;
    d["autoCompactionEnabled"] = cfg.autoCompaction;
    d["messageCount"] = g_messages.size();
    d["pendingMessageCount"] = g_steering.size() + g_followUp.size();
    d["pid"] = static_cast<long long>(::getpid());
    return d;
}

json sessionStats() {
    long long users = 0, assistants = 0, toolCalls = 0, toolResults = 0, in = 0, out = 0;
    for (const json& m : g_messages) {
        std::string role = roleOf(m);
        if (role == "user") ++users;
        if (role == "toolResult") ++toolResults;
        if (role != "assistant") continue;
        ++assistants;
        if (auto c = m.find("content"); c != m.end() && c->is_array())
            for (const json& b : *c)
                if (b.is_object() && b.value("type", "") == "toolCall") ++toolCalls;
        if (auto u = m.find("usage"); u != m.end() && u->is_object()) {
            in += u->value("input", 0LL);
            out += u->value("output", 0LL);
        }
    }
    json d = json::object();
    if (!cfg.sessionFile.empty()) d["sessionFile"] = cfg.sessionFile;
    d["sessionId"] = cfg.sessionId;
    d["userMessages"] = users;
    d["assistantMessages"] = assistants;
    d["toolCalls"] = toolCalls;
    d["toolResults"] = toolResults;
    d["totalMessages"] = g_messages.size();
    d["tokens"] = {{"input", in}, {"output", out}, {"cacheRead", 0}, {"cacheWrite", 0}, {"total", in + out}};
    d["cost"] = 0;
    json percent = in + out == 0 ? json(0) : json((in + out) * 100.0 / 128000);
    d["contextUsage"] = {{"tokens", in + out}, {"contextWindow", 128000}, {"percent", percent}};
    return d;
}

std::string entryIdFor(size_t index) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08zx", index);
    return buf;
}

void resetSession(bool keepMessages) {
    cfg.sessionId = randomUuid();
    cfg.sessionName.reset();
    if (!keepMessages) g_messages.clear();
    rewriteSession();
}

void cmdPrompt(const Cmd& c, const json& m) {
    auto msg = str(m, "message");
    if (!msg) return fail(c, "Cannot read properties of undefined (reading 'startsWith')");
    if (run.active) {
        auto sb = str(m, "streamingBehavior");
        if (!m.contains("streamingBehavior") || m["streamingBehavior"].is_null())
            return fail(c, "Agent is already processing. Specify streamingBehavior ('steer' or 'followUp') to queue the message.");
        (sb && *sb == "followUp" ? g_followUp : g_steering).push_back(*msg);
        emitQueueUpdate();
        return ok(c);
    }
    ok(c);
    auto w = words(*msg);
    if (!w.empty() && w[0] == "exit") {
        flushOut();
        std::exit(static_cast<int>(numArg(w, 1, 0)));
    }
    run = Run{};
    run.active = true;
    emit(json{{"type", "agent_start"}});
    beginTurn(*msg, false);
}

void handleCommand(const json& m) {
    Cmd c;
    c.msg = &m;
    if (auto it = m.find("id"); it != m.end()) c.id = *it;
    auto type = str(m, "type");
    if (!type) {
        json r = json::object();
        if (c.id) r["id"] = *c.id;
        r["type"] = "response";
        r["success"] = false;
        r["error"] = "Unknown command: undefined";
        return emit(r);
    }
    c.type = *type;
    const std::string& t = c.type;

    if (t == "prompt") return cmdPrompt(c, m);
    if (t == "get_state") return ok(c, stateData());
    if (t == "get_messages") return ok(c, json{{"messages", g_messages}});
    if (t == "steer" || t == "follow_up") {
        auto msg = str(m, "message");
        if (!msg) return fail(c, "Cannot read properties of undefined (reading 'startsWith')");
        (t == "steer" ? g_steering : g_followUp).push_back(*msg);
        emitQueueUpdate();
        return ok(c);
    }
    if (t == "abort") {
        if (!run.active) return ok(c);
        if (run.phase == Phase::UiWait) {  // pi answers only once the dialog is answered
            run.pendingAborts.push_back(c.id);
            return;
        }
        abortTail();
        return ok(c);
    }
    if (t == "extension_ui_response") {
        auto id = str(m, "id");
        if (!run.active || run.phase != Phase::UiWait || !id || *id != run.uiId) return;  // ignored silently
        std::string answer = "picked nothing";
        bool cancelled = m.contains("cancelled") && m["cancelled"] == true;
        if (!cancelled && m.contains("value") && !m["value"].is_null())
            answer = "picked " + (m["value"].is_string() ? m["value"].get<std::string>() : dump(m["value"]));
        else if (!cancelled && m.contains("confirmed"))
            answer = "picked " + dump(m["confirmed"]);
        return resolveUi(answer);
    }
    if (t == "set_model") {
        auto p = str(m, "provider"), id = str(m, "modelId");
        if (!p || !id || p->empty() || id->empty())
            return fail(c, "Model not found: " + p.value_or("undefined") + "/" + id.value_or("undefined"));
        cfg.provider = *p;
        cfg.modelId = *id;
        return ok(c, modelObject(cfg.provider, cfg.modelId));
    }
    if (t == "cycle_model") {
        auto models = availableModels();
        size_t i = 0;
        for (; i < models.size(); ++i)
            if (models[i]["provider"] == cfg.provider && models[i]["id"] == cfg.modelId) break;
        const json& nm = models[(i + 1) % models.size()];
        cfg.provider = nm["provider"].get<std::string>();
        cfg.modelId = nm["id"].get<std::string>();
        return ok(c, json{{"model", nm}, {"thinkingLevel", cfg.thinkingLevel}, {"isScoped", false}});
    }
    if (t == "get_available_models") return ok(c, json{{"models", availableModels()}});
    if (t == "set_thinking_level") {
        if (auto l = str(m, "level")) cfg.thinkingLevel = *l;
        emit(json{{"type", "thinking_level_changed"}, {"level", cfg.thinkingLevel}});
        return ok(c);
    }
    if (t == "cycle_thinking_level") return ok(c, json(nullptr));  // non-reasoning model: data null
    if (t == "get_available_thinking_levels") return ok(c, json{{"levels", json::array({"off"})}});
    if (t == "set_steering_mode" || t == "set_follow_up_mode") {
        if (auto mode = str(m, "mode")) (t == "set_steering_mode" ? cfg.steeringMode : cfg.followUpMode) = *mode;
        return ok(c);
    }
    if (t == "set_auto_compaction" || t == "set_auto_retry") {
        bool en = m.contains("enabled") && m["enabled"] == true;
        (t == "set_auto_compaction" ? cfg.autoCompaction : cfg.autoRetry) = en;
        return ok(c);
    }
    if (t == "set_session_name") {
        auto name = str(m, "name");
        if (!name || name->empty()) return fail(c, "Session name cannot be empty");
        cfg.sessionName = *name;
        emit(json{{"type", "session_info_changed"}, {"name", *name}});
        return ok(c);
    }
    if (t == "get_last_assistant_text") {
        std::string text = lastAssistantText();
        return ok(c, text.empty() ? json::object() : json{{"text", text}});
    }
    if (t == "get_session_stats") return ok(c, sessionStats());
    if (t == "get_commands") return ok(c, json{{"commands", json::array()}});
    if (t == "get_entries") return ok(c, json{{"entries", json::array()}, {"leafId", nullptr}});
    if (t == "get_tree") return ok(c, json{{"tree", json::array()}, {"leafId", nullptr}});
    if (t == "get_fork_messages") {
        json list = json::array();
        for (size_t i = 0; i < g_messages.size(); ++i)
            if (roleOf(g_messages[i]) == "user")
                list.push_back(json{{"entryId", entryIdFor(i)}, {"text", textOf(g_messages[i])}});
        return ok(c, json{{"messages", list}});
    }
    if (t == "fork") {
        auto eid = str(m, "entryId");
        for (size_t i = 0; eid && i < g_messages.size(); ++i) {
            if (entryIdFor(i) != *eid || roleOf(g_messages[i]) != "user") continue;
            std::string text = textOf(g_messages[i]);
            g_messages.resize(i);
            resetSession(true);
            return ok(c, json{{"text", text}, {"cancelled", false}});
        }
        return fail(c, "Invalid entry ID for forking");
    }
    if (t == "clear_queue") {
        json removed{{"steering", json(std::vector<std::string>(g_steering.begin(), g_steering.end()))},
                     {"followUp", json(std::vector<std::string>(g_followUp.begin(), g_followUp.end()))}};
        g_steering.clear();
        g_followUp.clear();
        emitQueueUpdate();
        return ok(c, removed);
    }
    if (t == "abort_retry" || t == "abort_bash") return ok(c);
    if (t == "new_session") {
        resetSession(false);
        return ok(c, json{{"cancelled", false}});
    }
    if (t == "clone") {
        cfg.sessionId = randomUuid();
        return ok(c, json{{"cancelled", false}});
    }
    if (t == "switch_session") {
        auto path = str(m, "sessionPath");
        if (!path) return fail(c, "Cannot read properties of undefined (reading 'startsWith')");
        // pi rebuilds its cwd-bound runtime from the header of the file it switches to.
        bool readable = false;
        std::string data = readFile(*path, &readable);
        json header = json::parse(data.substr(0, data.find('\n')), nullptr, false);
        if (header.is_object() && header.value("type", "") == "session" && header.contains("cwd")) {
            std::string cwd = header.value("cwd", "");
            struct stat st{};
            if (::stat(cwd.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
                return fail(c, "Stored session working directory does not exist: " + cwd);
            cfg.cwd = cwd;
        }
        cfg.sessionFile = *path;
        cfg.sessionDir.clear();
        // As pi: the session id is the header's.
        cfg.sessionId = header.is_object() && header.contains("id") && header["id"].is_string()
                            ? header["id"].get<std::string>()
                            : randomUuid();
        cfg.sessionName.reset();
        loadSession(*path);
        return ok(c, json{{"cancelled", false}});
    }
    if (t == "export_html") {
        auto out = str(m, "outputPath");
        return ok(c, json{{"path", out ? *out : "pi-session-" + cfg.sessionId + ".html"}});
    }
    if (t == "compact") {
        emit(json{{"type", "compaction_start"}, {"reason", "manual"}});
        if (g_messages.size() < 4) {
            emit(json{{"type", "compaction_end"}, {"reason", "manual"}, {"aborted", false}, {"willRetry", false},
                      {"errorMessage", "Compaction failed: Nothing to compact (session too small)"}});
            return fail(c, "Nothing to compact (session too small)");
        }
        json result{{"summary", "## Goal\nfake summary of the conversation\n"},
                    {"firstKeptEntryId", entryIdFor(g_messages.size() - 2)},
                    {"tokensBefore", 100 * static_cast<long long>(g_messages.size())},
                    {"estimatedTokensAfter", 100},
                    {"usage", usageFor(100, 2)},
                    {"details", {{"readFiles", json::array()}, {"modifiedFiles", json::array()}}}};
        emit(json{{"type", "compaction_end"}, {"reason", "manual"}, {"result", result}, {"aborted", false},
                  {"willRetry", false}});
        return ok(c, result);
    }
    if (t == "bash") {
        std::string out = "fake bash: " + str(m, "command").value_or("undefined") + "\n";
        json ev{{"type", "bash_execution_update"}};
        if (c.id) ev["id"] = *c.id;
        ev["delta"] = out;
        emit(ev);
        return ok(c, json{{"output", out}, {"exitCode", 0}, {"cancelled", false}, {"truncated", false}});
    }
    fail(c, "Unknown command: " + t);
}

// Mimic the text of JSON.parse's SyntaxError for the `parse` error response.
std::string parseErrorText(const std::string& line) {
    if (line.find_first_not_of(" \t\r\n") == std::string::npos) return "Unexpected end of JSON input";
    try {
        json probe = json::parse(line);
        (void)probe;
    } catch (const json::parse_error& e) {
        std::string what = e.what();
        size_t pos = e.byte > 0 ? e.byte - 1 : 0;
        if (what.find("unexpected end of input") != std::string::npos) return "Unexpected end of JSON input";
        if (what.find("expected end of input") != std::string::npos)
            return "Unexpected non-whitespace character after JSON at position " + std::to_string(pos) +
                   " (line 1 column " + std::to_string(pos + 1) + ")";
        std::string tok = pos < line.size() ? std::string(1, line[pos]) : "";
        std::string shown = line.size() > 40 ? line.substr(0, 40) + "..." : line;
        return "Unexpected token '" + tok + "', \"" + shown + "\" is not valid JSON";
    } catch (const std::exception& e) {
        return e.what();
    }
    return "Unexpected end of JSON input";
}

void handleLine(std::string line) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    json m = json::parse(line, nullptr, false);
    if (m.is_discarded()) {
        emit(json{{"type", "response"},
                  {"command", "parse"},
                  {"success", false},
                  {"error", "Failed to parse command: " + parseErrorText(line)}});
        return;
    }
    if (!m.is_object()) {
        emit(json{{"type", "response"}, {"success", false}, {"error", "Unknown command: undefined"}});
        return;
    }
    handleCommand(m);
}

// --session FILE: resume (or start) that file, as pi does.
std::string g_sessionArg;

void parseArgs(int argc, char** argv) {
    static const char* withValue[] = {"--mode",   "--provider", "--model",  "--thinking",       "--session-dir",
                                      "--session", "--name",     "-n",       "-e",               "--extension",
                                      "--session-id", "--fork",  "--api-key", "--system-prompt", "--append-system-prompt",
                                      "--tools",  "--models",   "--export"};
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i], val;
        bool hasVal = false;
        if (auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
            val = a.substr(eq + 1);
            a = a.substr(0, eq);
            hasVal = true;
        } else if (std::any_of(std::begin(withValue), std::end(withValue), [&](const char* f) { return a == f; }) &&
                   i + 1 < argc) {
            val = argv[++i];
            hasVal = true;
        }
        if (!hasVal) continue;
        if (a == "--provider") cfg.provider = val;
        else if (a == "--model") cfg.modelId = val;
        else if (a == "--thinking") cfg.thinkingLevel = val;
        else if (a == "--session-dir") cfg.sessionDir = val;
        else if (a == "--name" || a == "-n") cfg.sessionName = val;
        else if (a == "--session") g_sessionArg = val;
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (std::getenv("FAKE_AGENT_FAIL_START")) {
        static const char msg[] = "Error: fake start failure\n";
        writeAll(2, msg, sizeof msg - 1);
        return 1;
    }
    parseArgs(argc, argv);
    if (char buf[4096]; ::getcwd(buf, sizeof buf)) cfg.cwd = buf;
    if (!cfg.sessionDir.empty()) {
        while (cfg.sessionDir.size() > 1 && cfg.sessionDir.back() == '/') cfg.sessionDir.pop_back();
        cfg.sessionFile = cfg.sessionDir + "/fake-session.jsonl";
        if (!g_sessionArg.empty()) {
            cfg.sessionFile = g_sessionArg;
        } else if (DIR* dir = ::opendir(cfg.sessionDir.c_str())) {
            // Like pi's --continue: the newest session file in the dir, if any.
            long long newest = -1;
            while (dirent* e = ::readdir(dir)) {
                std::string name = e->d_name;
                if (name.size() < 6 || name.substr(name.size() - 6) != ".jsonl") continue;
                std::string path = cfg.sessionDir + "/" + name;
                struct stat st{};
                if (::stat(path.c_str(), &st) != 0) continue;
                long long mtime = static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
                if (mtime > newest) {
                    newest = mtime;
                    cfg.sessionFile = path;
                }
            }
            ::closedir(dir);
        }
        uint64_t h = fnv1a(cfg.sessionFile);
        cfg.sessionId = uuidFrom(h, fnv1a("id", h));  // stable across restarts on the same dir
        // A test's stand-in for a session file pi cannot load (pi exits 1 before answering).
        bool marked = false;
        readFile(cfg.sessionDir + "/fake-fail-start", &marked);
        if (marked) {
            static const char msg[] = "Error: Session file is not a valid pi session (fake)\n";
            writeAll(2, msg, sizeof msg - 1);
            return 1;
        }
        loadSession(cfg.sessionFile);
    } else {
        cfg.sessionId = randomUuid();
    }

    std::string in;
    size_t scanned = 0;
    std::vector<char> buf(1 << 16);
    for (;;) {
        flushOut();
        int timeout = -1;
        if (run.due) {
            auto left = std::chrono::ceil<std::chrono::milliseconds>(*run.due - Clock::now()).count();
            timeout = static_cast<int>(std::max<long long>(0, left));
        }
        pollfd pfd{0, POLLIN, 0};
        int r = ::poll(&pfd, 1, timeout);
        if (r < 0 && errno != EINTR) return 1;
        if (r > 0) {
            ssize_t n = ::read(0, buf.data(), buf.size());
            if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            if (n <= 0) {  // EOF: like pi (readline) handle an unterminated last line, then exit 0
                try {
                    if (!in.empty()) handleLine(in);
                } catch (const std::exception&) {
                }
                flushOut();
                // FAKE_AGENT_EXIT_DELAY_MS: a slow shutdown (tests of commands that come while
                // an agent is being stopped).
                if (const char* delay = std::getenv("FAKE_AGENT_EXIT_DELAY_MS"))
                    ::usleep(static_cast<useconds_t>(std::atoi(delay)) * 1000);
                return 0;
            }
            in.append(buf.data(), static_cast<size_t>(n));
            size_t start = 0, nl;
            while ((nl = in.find('\n', scanned)) != std::string::npos) {
                try {
                    handleLine(in.substr(start, nl - start));
                } catch (const std::exception& e) {  // never die on bad input (e.g. "big 999999999999")
                    std::fprintf(stderr, "fake-agent: %s\n", e.what());
                }
                start = scanned = nl + 1;
            }
            in.erase(0, start);
            scanned = in.size();
        }
        if (run.due && Clock::now() >= *run.due) onTimer();
    }
}
