// The shared building blocks on the bundle path: selector matching (per node per change),
// envelope seal/open (per bundle) and sealed boxes (per secret per node).
#include "shared/crypto/keys.hpp"
#include "shared/envelope/envelope.hpp"
#include "shared/labels/selector.hpp"

#include <benchmark/benchmark.h>

namespace {

using namespace lab::shared;

void bench_selector_match(benchmark::State& state) {
  auto selector = labels::Selector::parse("role=web,env in (prod,stage),!gpu").value();
  labels::LabelSet node;
  for (int i = 0; i < state.range(0); ++i)
    node.emplace("key" + std::to_string(i), "v");
  node.emplace("role", "web");
  node.emplace("env", "prod");
  for (auto _ : state)
    benchmark::DoNotOptimize(selector.matches(node));
}
BENCHMARK(bench_selector_match)->Arg(4)->Arg(64)->Arg(1024);

void bench_selector_parse(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(labels::Selector::parse("role=web,env in (prod,stage),!gpu"));
  }
}
BENCHMARK(bench_selector_parse);

void bench_envelope_seal(benchmark::State& state) {
  auto key = crypto::Ed25519PrivateKey::generate().value();
  const crypto::Bytes payload(static_cast<std::size_t>(state.range(0)), 0x42);
  for (auto _ : state)
    benchmark::DoNotOptimize(envelope::seal(key, "bundle", payload));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(bench_envelope_seal)->Arg(1024)->Arg(65536);

void bench_envelope_open(benchmark::State& state) {
  auto key = crypto::Ed25519PrivateKey::generate().value();
  const auto pub = key.public_key();
  const crypto::Bytes payload(static_cast<std::size_t>(state.range(0)), 0x42);
  const crypto::Bytes sealed = envelope::seal(key, "bundle", payload).value();
  for (auto _ : state)
    benchmark::DoNotOptimize(envelope::open(sealed, pub, "bundle"));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(bench_envelope_open)->Arg(1024)->Arg(65536);

void bench_sealed_box_seal(benchmark::State& state) {
  auto node = crypto::X25519PrivateKey::generate().value();
  const auto pub = node.public_key();
  const crypto::Bytes secret(64, 0x42);
  for (auto _ : state)
    benchmark::DoNotOptimize(crypto::seal(pub, secret, crypto::as_bytes("n|1")));
}
BENCHMARK(bench_sealed_box_seal);

void bench_sealed_box_open(benchmark::State& state) {
  auto node = crypto::X25519PrivateKey::generate().value();
  const crypto::Bytes sealed =
      crypto::seal(node.public_key(), crypto::Bytes(64, 0x42), crypto::as_bytes("n|1")).value();
  for (auto _ : state)
    benchmark::DoNotOptimize(crypto::open(node, sealed, crypto::as_bytes("n|1")));
}
BENCHMARK(bench_sealed_box_open);

}  // namespace
