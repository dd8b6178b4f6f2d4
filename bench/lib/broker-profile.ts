/**
 * Where RabbitMQ's CPU goes, by the kind of Erlang process doing the work: a profile of
 * the broker over a window, taken with `rabbitmqctl eval` on the machine's own node.
 * Work is counted in reductions (the Erlang VM's unit of work, what its scheduler meters),
 * summed per process kind: quorum queues' Raft servers, channels, connection readers, ...;
 * classic queues by name family (the hosts' tick queues, server-named queues).
 *
 * start() leaves a process on the node holding every process's reduction count; stop()
 * asks it for the differences (its own work left out). The CLI's own start-up (an Erlang VM, ~1 CPU-s) falls
 * before and after the window, not in it. The whole node is profiled: anything else using
 * the broker in the window (other vhosts) is in the figures too.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Registered on the node while a window is open. */
const PROFILER = 'virtsync_bench_broker_profile';

const START = `
Family = fun(<<"virtsync.tick.", _/binary>>) -> "virtsync.tick.*"; (<<"amq.gen-", _/binary>>) -> "amq.gen-*"; (Other) -> binary_to_list(Other) end,
ClassicQueues = maps:from_list([{amqqueue:get_pid(Q), Family(element(4, amqqueue:get_name(Q)))} || Q <- rabbit_amqqueue:list()]),
Kind = fun(P) ->
  case erlang:process_info(P, registered_name) of
    undefined -> gone;
    Registered ->
      {M, _, _} = proc_lib:translate_initial_call(P),
      Generic = lists:member(M, [gen_server, gen_server2, gen_event, gen_batch_server, gen_statem, supervisor]),
      case {maps:find(P, ClassicQueues), Registered} of
        {{ok, QueueFamily}, _} -> "classic_queue:" ++ QueueFamily;
        {error, {registered_name, Name}} when Generic, is_atom(Name) -> atom_to_list(Name);
        _ -> atom_to_list(M)
      end
  end
end,
Snap = fun() -> maps:from_list([{P, {R, Kind(P)}} || P <- erlang:processes(), {reductions, R} <- [erlang:process_info(P, reductions)]]) end,
Before = Snap(),
Started = erlang:monotonic_time(millisecond),
Profiler = spawn(fun() ->
  receive {stop, From} ->
    After = Snap(),
    Ms = erlang:monotonic_time(millisecond) - Started,
    Self = self(),
    Add = fun(P, _, Acc) when P =:= Self -> Acc; (P, {R, K}, Acc) ->
      {R0, K0} = maps:get(P, Before, {0, K}),
      Key = case K of gone -> K0; _ -> K end,
      maps:update_with(Key, fun(V) -> V + R - R0 end, R - R0, Acc)
    end,
    From ! {profile, Ms, maps:to_list(maps:fold(Add, #{}, After))}
  after 600000 -> ok
  end
end),
register(${PROFILER}, Profiler),
ok.`;

const STOP = `
${PROFILER} ! {stop, self()},
receive {profile, Ms, ByKind} ->
  io:format("window_ms ~p~n", [Ms]),
  [io:format("kind ~s ~p~n", [K, R]) || {K, R} <- ByKind],
  ok
after 30000 -> timeout
end.`;

export interface BrokerWork {
  /** A label for the kind of process (quorum queue, channel, ...) and the Erlang names it covers. */
  kind: string;
  reductions: number;
  share: number;
}

export interface BrokerProfile {
  windowMs: number;
  totalReductions: number;
  byKind: BrokerWork[];
}

/** Erlang process kinds as an operator knows them; anything else is listed by its own name. */
const KINDS: ReadonlyArray<{ label: string; matches: RegExp }> = [
  { label: 'classic queues: the hosts\' tick queues (virtsync.tick.*)', matches: /^classic_queue:virtsync\.tick\.\*$/ },
  { label: 'classic queues: server-named (amq.gen-*: the bench\'s own tap, probes)', matches: /^classic_queue:amq\.gen-\*$/ },
  { label: 'quorum queues: Raft servers (ra_server_proc)', matches: /^ra_server_proc$/ },
  { label: 'quorum queues: write-ahead log and segments (ra_log_*)', matches: /^ra_log/ },
  { label: 'channels (rabbit_channel)', matches: /^rabbit_channel$/ },
  { label: 'connection readers: AMQP frame parsing (rabbit_reader)', matches: /^rabbit_reader$/ },
  { label: 'connection writers (rabbit_writer)', matches: /^rabbit_writer$/ },
  { label: 'classic queues: other (rabbit_prequeue) and the message store', matches: /^rabbit_(prequeue|amqqueue_process|msg_store)$|^file_handle_cache$/ },
  { label: 'metadata store (mnesia, dets, disk_log)', matches: /^mnesia|^dets$|^disk_log$/ },
  { label: 'statistics for the management plugin (*metrics*, rabbit_mgmt_*, rabbit_event)', matches: /metrics|^rabbit_mgmt|^rabbit_event$/ },
  { label: 'management API and CLI calls (cowboy, erpc, worker pool)', matches: /^cowboy|^erpc$|^worker_pool|^ranch/ },
];

function labelOf(kind: string): string {
  const known = KINDS.find(({ matches }) => matches.test(kind))?.label;
  if (known !== undefined) return known;
  return kind.startsWith('classic_queue:') ? `classic queue ${kind.slice('classic_queue:'.length)}` : `other: ${kind}`;
}

/** Parses what STOP prints: "window_ms N", then "kind NAME REDUCTIONS" per kind. */
export function parseBrokerProfile(output: string): BrokerProfile {
  const windowMs = Number(/^window_ms (\d+)$/m.exec(output)?.[1] ?? Number.NaN);
  if (!Number.isFinite(windowMs)) throw new Error(`no broker profile in rabbitmqctl's output: ${output.slice(0, 300)}`);
  const byLabel = new Map<string, number>();
  for (const [, kind = '', reductions = '0'] of output.matchAll(/^kind (.+) (-?\d+)$/gm)) {
    const label = labelOf(kind);
    byLabel.set(label, (byLabel.get(label) ?? 0) + Number(reductions));
  }
  const totalReductions = [...byLabel.values()].reduce((sum, value) => sum + value, 0);
  const all = [...byLabel.entries()].map(([kind, reductions]) => ({ kind, reductions, share: totalReductions > 0 ? reductions / totalReductions : 0 }));
  // Dozens of idle supervisors and monitors: one line for everything under half a percent.
  const small = all.filter((work) => work.share < 0.005);
  const byKind = all.filter((work) => work.share >= 0.005).sort((a, b) => b.reductions - a.reductions);
  const rest = small.reduce((sum, work) => sum + work.reductions, 0);
  if (small.length > 0) byKind.push({ kind: `${small.length} other kinds, each under 0.5 %`, reductions: rest, share: totalReductions > 0 ? rest / totalReductions : 0 });
  return { windowMs, totalReductions, byKind };
}

async function rabbitmqctlEval(expression: string): Promise<string> {
  const { stdout } = await execFileAsync('rabbitmqctl', ['eval', expression], { timeout: 60_000 });
  return stdout;
}

/** Opens a window on the local node; the returned stop() closes it and reads the profile. */
export async function startBrokerProfile(): Promise<{ stop(): Promise<BrokerProfile> }> {
  // A window left open by an interrupted run would hold the name.
  await rabbitmqctlEval(`case whereis(${PROFILER}) of undefined -> ok; Old -> exit(Old, kill), ok end.`);
  await rabbitmqctlEval(START);
  return { stop: async () => parseBrokerProfile(await rabbitmqctlEval(STOP)) };
}
