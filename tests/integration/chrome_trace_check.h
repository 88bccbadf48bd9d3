// An independent structural check of a Trace Event JSON document (SPEC §8), written from the
// Trace Event Format's rules and what Perfetto's importer needs rather than from our exporter:
// it only sees the parsed JSON. Used by the unit and the integration tests.
//
// Returns the problems found (empty: the document is well formed):
// - every event has a ph, pid, name; every non-metadata event a numeric ts (µs) and a tid;
// - complete slices (X) have dur >= 0, and on one (pid, tid) track never overlap;
// - nestable async events (b/e), grouped by (pid, cat, id2.local or id; id2.local a string, as
//   Perfetto requires), pair up as a stack in
//   time order (an e closes the innermost open slice of its group, with the same name), nothing
//   stays open, and the children of a request are send / wait / receive;
// - every flow id has one start (s) and one finish (f), not before it, each inside an X slice on
//   its own track;
// - every track has a thread_name and every pid a process_name.
#pragma once

#include <algorithm>
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
    double start, end;
    std::string name;
  };
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
    double s_ts = 0, f_ts = 0;
    Track s_track, f_track;
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
        x_slices[track].push_back({ts, ts + ev["dur"].get<double>(), name});
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
        Flow& fl = flows[ev.value("cat", "") + "/" + ev["id"].dump()];
        if (ph == 's') ++fl.s, fl.s_ts = ts, fl.s_track = track;
        else ++fl.f, fl.f_ts = ts, fl.f_track = track;
        break;
      }
      default:
        bad("unexpected phase", ev);
    }
  }

  ChromeStats st;
  for (auto& [track, slices] : x_slices) {
    std::stable_sort(slices.begin(), slices.end(), [](const Slice& a, const Slice& b) { return a.start < b.start; });
    for (size_t i = 1; i < slices.size(); ++i) {
      if (slices[i].start < slices[i - 1].end)
        problems.push_back("overlapping slices on track " + std::to_string(track.second) + ": " +
                           slices[i - 1].name + " and " + slices[i].name);
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
  auto inside_x = [&](const Track& t, double ts) {
    auto it = x_slices.find(t);
    if (it == x_slices.end()) return false;
    return std::any_of(it->second.begin(), it->second.end(),
                       [&](const Slice& s) { return s.start <= ts && ts <= s.end; });
  };
  for (const auto& [id, fl] : flows) {
    if (fl.s != 1 || fl.f != 1) {
      problems.push_back("flow " + id + " has " + std::to_string(fl.s) + " starts, " + std::to_string(fl.f) + " finishes");
      continue;
    }
    if (fl.f_ts < fl.s_ts) problems.push_back("flow " + id + " finishes before it starts");
    if (!inside_x(fl.s_track, fl.s_ts)) problems.push_back("flow " + id + " starts outside a slice");
    if (!inside_x(fl.f_track, fl.f_ts)) problems.push_back("flow " + id + " finishes outside a slice");
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
