// How one step's work is cut between threads, in plain C++ (the kernels' cores use it; `shares.h`
// says why the decode stack splits work itself).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace kern {

// The first and one-past-last of a run of items.
struct Range {
  int64_t begin, end;
};

// The items of `count` that participant `index` of `parts` takes: even slices.
inline Range slice(int64_t count, int64_t index, int64_t parts) {
  const int64_t chunk = (count + parts - 1) / parts;
  return {std::min(count, index * chunk), std::min(count, (index + 1) * chunk)};
}

// parts + 1 bounds that cut items of the given costs into `parts` runs of about equal total cost, in
// order (a thread's share of tasks that differ in size: decodes of different contexts, query tiles
// late or early in a chunk).
inline std::vector<int64_t> balanced_bounds(const std::vector<int64_t>& cost, int64_t parts) {
  int64_t total = 0;
  for (const int64_t c : cost) total += c;
  std::vector<int64_t> bounds{0};
  int64_t done = 0;
  const int64_t count = static_cast<int64_t>(cost.size());
  for (int64_t item = 0; item < count; ++item) {
    done += cost[item];
    if (static_cast<int64_t>(bounds.size()) < parts && done * parts >= total * static_cast<int64_t>(bounds.size()))
      bounds.push_back(item + 1);
  }
  while (static_cast<int64_t>(bounds.size()) <= parts) bounds.push_back(count);
  return bounds;
}

}  // namespace kern
