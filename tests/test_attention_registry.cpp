// The attention registry (attention/registry.h): one validation of the attention options, and
// one-line refusals naming the key, the implementation and the implementations that support it.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "attention/registry.h"
#include "config/config.h"
#include "core/error.h"

namespace attn {
namespace {

std::string error_of(const AttentionOptions& o, const AttentionUse& use) {
  try {
    check_attention(o, use);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

AttentionUse on(AttentionDevice d) {
  AttentionUse u;
  u.device = d;
  return u;
}

TEST(AttentionRegistry, UnsupportedVariantNamesKeyImplAndSupporters) {
  AttentionOptions o;
  o.alibi = true;
  EXPECT_EQ(error_of(o, on(AttentionDevice::cuda)),
            "attention.alibi = true is not supported by attention.impl = \"naive\" on cuda "
            "(supported by: naive on cpu, flash on cuda)");
  o = AttentionOptions{};
  o.sliding_window = 16;
  const std::string e = error_of(o, on(AttentionDevice::cuda));
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  EXPECT_EQ(e.rfind("attention.sliding_window = 16 is not supported by attention.impl = \"naive\" on cuda", 0), 0u) << e;
  o.impl = "flash";
  EXPECT_EQ(error_of(o, on(AttentionDevice::cuda)), "");
  EXPECT_EQ(error_of(AttentionOptions{}, on(AttentionDevice::cuda)), "");
}

TEST(AttentionRegistry, ImplementationsAndDevices) {
  AttentionOptions o;
  o.impl = "flash";
  EXPECT_EQ(error_of(o, on(AttentionDevice::cpu)), "attention.impl = \"flash\" is not available on cpu (available: flash on cuda)");
  o.impl = "fast";
  EXPECT_EQ(error_of(o, on(AttentionDevice::cpu)), "attention.impl must be \"naive\" or \"flash\" (got \"fast\")");
  // every registered implementation is found on its own device, under its own name
  for (const AttentionImpl& i : attention_impls()) {
    o.impl = i.name;
    EXPECT_EQ(&check_attention(o, on(i.device)), &i);
  }
}

TEST(AttentionRegistry, WhatACallAsksBeyondTheOptions) {
  AttentionOptions o;
  o.impl = "flash";
  AttentionUse u = on(AttentionDevice::cuda);
  u.dropout = 0.1f;  // every implementation runs attention dropout (flash inside its kernels)
  EXPECT_EQ(error_of(o, u), "");
  u = on(AttentionDevice::cuda);
  u.head_dim = 48;
  EXPECT_NE(error_of(o, u).find("head dim 48"), std::string::npos);
  u.head_dim = 128;
  EXPECT_EQ(error_of(o, u), "");
  const DType bf16 = DType::BF16;
  u = on(AttentionDevice::cpu);
  u.precision = &bf16;
  o.impl = "naive";
  EXPECT_EQ(error_of(o, u), "device.precision = \"bf16\" is not supported by attention.impl = \"naive\" on cpu "
                            "(supported by: naive on cuda, flash on cuda)");
}

TEST(AttentionRegistry, CachedGenerationRunsOnlyDecodableVariants) {
  AttentionOptions o;
  AttentionUse u = on(AttentionDevice::cpu);
  u.decode = true;
  EXPECT_EQ(error_of(o, u), "");
  o.softcap = 30.0f;
  EXPECT_EQ(error_of(o, u), "attention.softcap = 30.000000 is not supported by cached generation "
                            "(attention.impl = \"naive\" on cpu); use --no-cache");
  o = AttentionOptions{};
  o.causal = false;
  EXPECT_NE(error_of(o, u).find("attention.causal = false"), std::string::npos);
}

TEST(AttentionRegistry, BadValuesAreRefusedOnceWithTheKey) {
  AttentionOptions o;
  o.softcap = -1.0f;
  EXPECT_EQ(attention_option_problem(o).key, "attention.softcap");
  EXPECT_EQ(error_of(o, on(AttentionDevice::cpu)), "attention.softcap must be >= 0 (0 = off)");
  o = AttentionOptions{};
  o.sliding_window = -2;
  EXPECT_EQ(attention_option_problem(o).key, "attention.sliding_window");
  o.sliding_window = 4, o.causal = false;
  EXPECT_EQ(attention_option_problem(o).problem, "needs attention.causal = true");
  EXPECT_TRUE(attention_option_problem(AttentionOptions{}).key.empty());
}

// The config refuses through the same rules, naming the key and where it came from.
TEST(AttentionRegistry, ConfigAsksTheRegistry) {
  for (const char* ov : {"--attention.softcap=-1.0", "--attention.sliding_window=-3", "--attention.impl=\"fast\""}) {
    std::string msg;
    try {
      load_config("", {ov});
    } catch (const Error& e) {
      msg = e.what();
    }
    const std::string key = std::string(ov).substr(2, std::string(ov).find('=') - 2);
    EXPECT_NE(msg.find(key), std::string::npos) << ov << ": " << msg;
  }
  // every variant's key is a config key
  Config c = load_config("");
  const std::string toml = to_toml(c);
  for_each_variant([&]<class V>() {
    const std::string key = V::kKey, name = key.substr(key.find('.') + 1);
    EXPECT_NE(toml.find(name + " = "), std::string::npos) << key << " is not in the config schema";
  });
}

TEST(AttentionRegistry, PrefixLm) {
  AttentionOptions o;
  o.prefix_lm = true, o.prefix_len = 8;
  EXPECT_EQ(error_of(o, on(AttentionDevice::cuda)),
            "attention.prefix_lm = true is not supported by attention.impl = \"naive\" on cuda "
            "(supported by: naive on cpu, flash on cuda)");
  AttentionUse decode = on(AttentionDevice::cpu);
  decode.decode = true;
  EXPECT_EQ(error_of(o, decode), "");  // cached generation runs it
  o.prefix_token = 3;
  EXPECT_EQ(attention_option_problem(o).key, "attention.prefix_lm");  // both a length and a separator
  o.prefix_len = 0;
  EXPECT_TRUE(attention_option_problem(o).key.empty());
  o.causal = false;
  EXPECT_EQ(attention_option_problem(o).problem, "needs attention.causal = true (causal after the prefix)");
  // from a config: the keys, and where they came from
  EXPECT_EQ(load_config("", {"--attention.prefix_lm=true", "--data.prefix_token=7"}).attention.prefix_token, 7);
  EXPECT_EQ(load_config("", {"--attention.prefix_lm=true", "--attention.prefix_len=16"}).attention.prefix_len, 16);
  for (auto ov : std::vector<std::vector<std::string>>{{"--attention.prefix_lm=true"}, {"--attention.prefix_len=4"},
                                                       {"--attention.prefix_lm=true", "--attention.prefix_len=-1"}}) {
    std::string msg;
    try {
      load_config("", ov);
    } catch (const Error& e) {
      msg = e.what();
    }
    EXPECT_NE(msg.find("attention.prefix_lm"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace attn
