#include "train/profile.h"

#include <algorithm>
#include <fstream>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"

namespace attn {

void StepProfileReport::add_step(const StepProfile& profile, double step_ms) {
  sum_.add(profile);
  step_ms_sum_ += step_ms;
  steps_ += 1;
}

double StepProfileReport::step_ms() const { return steps_ > 0 ? step_ms_sum_ / steps_ : 0.0; }
double StepProfileReport::timed_ms() const { return steps_ > 0 ? sum_.total_ms() / steps_ : 0.0; }

double StepProfileReport::unaccounted_share() const {
  const double step = step_ms();
  return step > 0 ? std::max(0.0, 1.0 - timed_ms() / step) : 0.0;
}

double StepProfileReport::attention_share() const {
  const double step = step_ms();
  if (step <= 0) return 0.0;
  return (sum_[OpCategory::AttentionFwd] + sum_[OpCategory::AttentionBwd]) / steps_ / step;
}

StepProfile StepProfileReport::per_step() const {
  StepProfile p;
  if (steps_ == 0) return p;
  for (size_t i = 0; i < kNumOpCategories; ++i) p.ms[i] = sum_.ms[i] / steps_;
  p[OpCategory::Other] += std::max(0.0, step_ms() - timed_ms());
  return p;
}

nlohmann::json StepProfileReport::to_json() const {
  const StepProfile p = per_step();
  const double step = step_ms();
  nlohmann::json cats = nlohmann::json::object();
  for (size_t i = 0; i < kNumOpCategories; ++i)
    cats[op_category_name(static_cast<OpCategory>(i))] = {{"ms", p.ms[i]}, {"share", step > 0 ? p.ms[i] / step : 0.0}};
  return {{"steps", steps_},
          {"step_ms", step},
          {"timed_ms", timed_ms()},
          {"unaccounted_share", unaccounted_share()},
          {"attention_share", attention_share()},
          {"categories", cats},
          {"ops", ops_json()}};
}

// Named ops, most time first: per step ms, calls and share; achieved TFLOP/s and GB/s over
// the time the calls took (0 where the work was not counted).
nlohmann::json StepProfileReport::ops_json() const {
  std::vector<std::pair<std::string, OpStats>> ops(sum_.ops.begin(), sum_.ops.end());
  std::sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
  const double step = step_ms();
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [name, o] : ops) {
    const double seconds = o.ms * 1e-3;
    out.push_back({{"name", name},
                   {"category", op_category_name(o.category)},
                   {"calls", static_cast<double>(o.calls) / steps_},
                   {"ms", o.ms / steps_},
                   {"share", step > 0 ? o.ms / steps_ / step : 0.0},
                   {"tflops", seconds > 0 ? o.flops / seconds * 1e-12 : 0.0},
                   {"gbps", seconds > 0 ? o.bytes / seconds * 1e-9 : 0.0}});
  }
  return out;
}

std::string StepProfileReport::table() const { return format_profile_table(to_json()); }

std::string format_profile_table(const nlohmann::json& profile) {
  const double step = profile.at("step_ms").get<double>();
  std::string out = fmt::format("{:<15} {:>10} {:>10}\n", "category", "ms/step", "% of step");
  for (size_t i = 0; i < kNumOpCategories; ++i) {
    const char* name = op_category_name(static_cast<OpCategory>(i));
    const double ms = profile.at("categories").at(name).at("ms").get<double>();
    out += fmt::format("{:<15} {:>10.3f} {:>9.1f}%\n", name, ms, step > 0 ? 100.0 * ms / step : 0.0);
  }
  out += fmt::format("{:<15} {:>10.3f} {:>9.1f}%\n", "step", step, 100.0);
  out += fmt::format("({} steps; {:.1f}% of the step time is outside the timed calls, counted in other)\n",
                     profile.at("steps").get<int>(), 100.0 * profile.at("unaccounted_share").get<double>());
  if (profile.contains("ops")) out += format_ops_table(profile.at("ops"), step, kTopOps);
  return out;
}

std::string format_ops_table(const nlohmann::json& ops, double step_ms, size_t top) {
  std::string out = fmt::format("\n{:<26} {:<14} {:>6} {:>9} {:>9} {:>8} {:>8}\n", "op (top " + std::to_string(top) + ")",
                                "category", "calls", "ms/step", "% of step", "TFLOP/s", "GB/s");
  for (size_t i = 0; i < ops.size() && i < top; ++i) {
    const nlohmann::json& o = ops[i];
    const auto rate = [](double v) { return v > 0 ? fmt::format("{:.0f}", v) : std::string("-"); };
    out += fmt::format("{:<26} {:<14} {:>6.0f} {:>9.3f} {:>8.1f}% {:>8} {:>8}\n", o.at("name").get<std::string>(),
                       o.at("category").get<std::string>(), o.at("calls").get<double>(), o.at("ms").get<double>(),
                       step_ms > 0 ? 100.0 * o.at("ms").get<double>() / step_ms : 0.0, rate(o.at("tflops").get<double>()),
                       rate(o.at("gbps").get<double>()));
  }
  return out;
}

void StepProfileReport::write_json(const std::string& path) const {
  std::ofstream out(path, std::ios::trunc);
  ATTN_CHECK(out.good(), "cannot write the step profile to '{}'", path);
  out << to_json().dump(2) << "\n";
}

}  // namespace attn
