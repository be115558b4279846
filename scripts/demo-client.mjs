// A minimal pi-server client (Node 22's built-in WebSocket): creates a session, sends one
// prompt, prints the streamed text deltas as they arrive, then deletes the session.
// Usage: node scripts/demo-client.mjs ws://127.0.0.1:3141 "your prompt"
const [url = "ws://127.0.0.1:3141", prompt = "Hello pi"] = process.argv.slice(2);
// Command ids are remembered by the daemon (replay), so each run uses fresh ones.
const run = `${Date.now().toString(36)}-${process.pid}`;
const sessionId = `demo-${run}`;
const ids = { create: `create-${run}`, prompt: `prompt-${run}`, delete: `delete-${run}` };
const ws = new WebSocket(url);
const send = (cmd) => ws.send(JSON.stringify(cmd));
const timer = setTimeout(() => { console.error("timed out"); process.exit(1); }, 60000);
ws.onmessage = ({ data }) => {
  const frame = JSON.parse(data);
  if (frame.type === "server_ready") {
    send({ type: "create_session", id: ids.create, sessionId });
  } else if (frame.type === "response") {
    if (!frame.success) { console.error(`${frame.command} failed: ${frame.code} ${frame.error}`); process.exit(1); }
    if (frame.id === ids.create) {
      const model = frame.data.sessionInfo.model;
      console.error(`session ${sessionId} on model ${model}`);
      if (String(model).startsWith("pi-server-demo/"))
        console.error("(the offline demo model: no pi model is configured — see docs/configuration.md, \"Your pi setup\")");
      send({ type: "prompt", id: ids.prompt, sessionId, message: prompt });
    }
    if (frame.id === ids.delete) { clearTimeout(timer); ws.close(); }
  } else if (frame.type === "event") {
    const ev = frame.event;
    if (ev.type === "message_update" && ev.assistantMessageEvent?.type === "text_delta") {
      process.stdout.write(ev.assistantMessageEvent.delta);
    } else if (ev.type === "message_end" && ev.message?.role === "assistant" && ev.message.stopReason === "error") {
      console.error(`the model failed: ${ev.message.errorMessage ?? "unknown error"}`);
    } else if (ev.type === "agent_settled") {
      process.stdout.write("\n");
      send({ type: "delete_session", id: ids.delete, sessionId });
    }
  }
};
ws.onerror = (e) => { console.error("websocket error:", e.message ?? e); process.exit(1); };
ws.onclose = () => process.exit(0);
