// An independent structural check of a Trace Event JSON document (SPEC §8), written from the
// Trace Event Format's rules and what Perfetto's importer needs rather than from our exporter:
// it only sees the parsed JSON. Used by the unit and the integration tests.
//
// Returns the problems found (empty: the document is well formed):
// - every event has a ph, pid, name; every non-metadata event a numeric ts (µs) and a tid;
// - complete slices (X) have dur >= 0, and on one (pid, tid) track never overlap unless one nests
//   in the other (compared in whole ns, as Perfetto reads µs); an http slice with an http slice
//   around it is a request's send / wait / receive, and nothing nests deeper;
// - nestable async events (b/e), grouped by (pid, cat, id2.local or id; id2.local a string, as
//   Perfetto requires), pair up as a stack in
//   time order (an e closes the innermost open slice of its group, with the same name), nothing
//   stays open, and the children of a request are send / wait / receive;
// - every flow (cat, name, id: Perfetto's key for v1 flows) has one start (s) and one finish (f),
//   not before it when both are in one process, each inside an X slice on its own track (flows
//   bind to thread-track slices only); a finish binds to the enclosing slice (bp "e");
// - every track has a thread_name and every pid a process_name.
#pragma once

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

namespace httptrace::testcheck {

using nlohmann::json;

struct ChromeStats {
  size_t slices = 0, requests = 0, children = 0, flows = 0, tracks = 0;
  // Each flow with the outermost slice around each end (for a request flow: the requests).
  struct BoundFlow {
    std::string cat, name;
    json from, to;
  };
  std::vector<BoundFlow> bound;
};

inline std::vector<std::string> check_chrome_trace(const json& doc, ChromeStats* stats = nullptr) {
  std::vector<std::string> problems;
  auto bad = [&](const std::string& what, const json& ev) { problems.push_back(what + ": " + ev.dump()); };
  if (!doc.is_object() || !doc.contains("traceEvents") || !doc["traceEvents"].is_array()) {
    problems.push_back("no traceEvents array");
    return problems;
  }
  using Track = std::pair<long, long>;
  struct Slice {
    long long start, end;  // ns
    std::string name, cat;
    const json* ev;
  };
  auto ns = [](double us) { return std::llround(us * 1000); };
  std::map<Track, std::vector<Slice>> x_slices;
  struct Async {
    double ts;
    size_t order;
    char ph;
    std::string name;
  };
  std::map<std::tuple<long, std::string, std::string>, std::vector<Async>> async;
  struct Flow {
    int s = 0, f = 0;
    long long s_ts = 0, f_ts = 0;
    Track s_track, f_track;
    std::string cat, name;
  };
  std::map<std::string, Flow> flows;
  std::set<Track> used_tracks, named_tracks;
  std::set<long> pids, named_pids;

  size_t order = 0;
  for (const json& ev : doc["traceEvents"]) {
    ++order;
    if (!ev.contains("ph") || !ev["ph"].is_string() || ev["ph"].get<std::string>().size() != 1) {
      bad("no ph", ev);
      continue;
    }
    const char ph = ev["ph"].get<std::string>()[0];
    if (!ev.contains("pid") || !ev["pid"].is_number_integer()) {
      bad("no integer pid", ev);
      continue;
    }
    if (!ev.contains("name") || !ev["name"].is_string()) {
      bad("no name", ev);
      continue;
    }
    const long pid = ev["pid"].get<long>();
    const std::string name = ev["name"].get<std::string>();
    if (ph == 'M') {
      if (!ev.contains("args") || !ev["args"].contains("name") || !ev["args"]["name"].is_string()) {
        bad("metadata without args.name", ev);
      } else if (name == "process_name") {
        named_pids.insert(pid);
      } else if (name == "thread_name") {
        if (!ev.contains("tid") || !ev["tid"].is_number_integer()) bad("thread_name without tid", ev);
        else named_tracks.insert({pid, ev["tid"].get<long>()});
      }
      continue;
    }
    if (!ev.contains("ts") || !ev["ts"].is_number()) {
      bad("no numeric ts", ev);
      continue;
    }
    if (!ev.contains("tid") || !ev["tid"].is_number_integer()) {
      bad("no integer tid", ev);
      continue;
    }
    const double ts = ev["ts"].get<double>();
    const Track track{pid, ev["tid"].get<long>()};
    pids.insert(pid);
    used_tracks.insert(track);
    switch (ph) {
      case 'X': {
        if (!ev.contains("dur") || !ev["dur"].is_number() || ev["dur"].get<double>() < 0) {
          bad("X without dur >= 0", ev);
          break;
        }
        x_slices[track].push_back({ns(ts), ns(ts) + ns(ev["dur"].get<double>()), name, ev.value("cat", ""), &ev});
        break;
      }
      case 'b':
      case 'e': {
        std::string id;
        if (ev.contains("id2") && ev["id2"].contains("local")) {
          // Perfetto's importer takes id2.local only as a string and drops the event otherwise.
          if (!ev["id2"]["local"].is_string()) {
            bad("id2.local is not a string", ev);
            break;
          }
          id = "local:" + ev["id2"]["local"].get<std::string>();
        }
        else if (ev.contains("id")) id = "global:" + ev["id"].dump();
        else {
          bad("async event without id", ev);
          break;
        }
        const std::string cat = ev.value("cat", "");
        async[{pid, cat, id}].push_back({ts, order, ph, name});
        break;
      }
      case 's':
      case 'f': {
        if (!ev.contains("id")) {
          bad("flow without id", ev);
          break;
        }
        Flow& fl = flows[ev.value("cat", "") + "/" + name + "/" + ev["id"].dump()];
        fl.cat = ev.value("cat", "");
        fl.name = name;
        if (ph == 's') ++fl.s, fl.s_ts = ns(ts), fl.s_track = track;
        else ++fl.f, fl.f_ts = ns(ts), fl.f_track = track;
        if (ph == 'f' && ev.value("bp", "") != "e") bad("flow finish not bound to its enclosing slice", ev);
        break;
      }
      default:
        bad("unexpected phase", ev);
    }
  }

  ChromeStats st;
  for (auto& [track, slices] : x_slices) {
    // Parents first: by start, then the longer one.
    std::stable_sort(slices.begin(), slices.end(), [](const Slice& a, const Slice& b) {
      return a.start != b.start ? a.start < b.start : a.end > b.end;
    });
    std::vector<const Slice*> open;
    const Slice* request = nullptr;  // the latest http request slice on the track
    for (const Slice& sl : slices) {
      while (!open.empty() && open.back()->end <= sl.start) open.pop_back();
      if (!open.empty() && sl.end > open.back()->end) {
        problems.push_back("overlapping slices on track " + std::to_string(track.second) + ": " +
                           open.back()->name + " and " + sl.name);
        continue;
      }
      open.push_back(&sl);
      if (sl.cat != "http") continue;
      const bool inside = request && request->start <= sl.start && sl.end <= request->end;
      if (sl.name == "send" || sl.name == "wait" || sl.name == "receive") {
        ++st.children;
        if (!inside) problems.push_back("request phase " + sl.name + " outside a request");
      } else {
        ++st.requests;
        if (inside && request->end > request->start) problems.push_back("request " + sl.name + " inside request " + request->name);
        request = &sl;
      }
    }
    st.slices += slices.size();
  }
  for (auto& [group, evs] : async) {
    std::stable_sort(evs.begin(), evs.end(), [](const Async& a, const Async& b) { return a.ts < b.ts; });
    std::vector<const Async*> stack;
    for (const Async& a : evs) {
      if (a.ph == 'b') {
        if (stack.size() >= 2) problems.push_back("async nesting deeper than request/phase: " + a.name);
        if (stack.size() == 1) {
          ++st.children;
          if (a.name != "send" && a.name != "wait" && a.name != "receive")
            problems.push_back("unexpected request child " + a.name);
        } else {
          ++st.requests;
        }
        stack.push_back(&a);
      } else if (stack.empty()) {
        problems.push_back("async end without begin: " + a.name);
      } else {
        if (stack.back()->name != a.name)
          problems.push_back("async end " + a.name + " closes " + stack.back()->name);
        stack.pop_back();
      }
    }
    if (!stack.empty()) problems.push_back("async slice left open: " + stack.back()->name);
  }
  // The outermost slice around ts on t, or nullptr.
  auto around = [&](const Track& t, long long ts) -> const Slice* {
    auto it = x_slices.find(t);
    if (it == x_slices.end()) return nullptr;
    const Slice* best = nullptr;
    for (const Slice& s : it->second)
      if (s.start <= ts && ts <= s.end && (!best || s.end - s.start > best->end - best->start)) best = &s;
    return best;
  };
  for (const auto& [id, fl] : flows) {
    if (fl.s != 1 || fl.f != 1) {
      problems.push_back("flow " + id + " has " + std::to_string(fl.s) + " starts, " + std::to_string(fl.f) + " finishes");
      continue;
    }
    if (fl.f_ts < fl.s_ts && fl.s_track.first == fl.f_track.first) problems.push_back("flow " + id + " finishes before it starts");
    const Slice* from = around(fl.s_track, fl.s_ts);
    const Slice* to = around(fl.f_track, fl.f_ts);
    if (!from) problems.push_back("flow " + id + " starts outside a slice");
    if (!to) problems.push_back("flow " + id + " finishes outside a slice");
    if (from && to) st.bound.push_back({fl.cat, fl.name, *from->ev, *to->ev});
    ++st.flows;
  }
  for (const Track& t : used_tracks)
    if (!named_tracks.count(t)) problems.push_back("track " + std::to_string(t.second) + " has no thread_name");
  for (long p : pids)
    if (!named_pids.count(p)) problems.push_back("pid " + std::to_string(p) + " has no process_name");
  st.tracks = used_tracks.size();
  if (stats) *stats = st;
  return problems;
}

}  // namespace httptrace::testcheck
