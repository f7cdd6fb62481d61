"""The grid of preference and RL runs behind chapter 12: `make preference-grid`.

    python benchmarks/preference_grid.py            # the full grid (its minutes are in the results file)
    python benchmarks/preference_grid.py --quick    # a tiny grid into /tmp, to check the script (a few minutes)

Everything starts from the shipped assistant of chapter 11 (``course/checkpoints/assistant-char``, "SFT" below)
and uses the arithmetic it answers by heart (`course.rewards.PREFERENCE_TASKS`: add, subtract, multiply), where its
greedy exact match is 11-33%: room to improve, and enough right answers to learn from. The gold reward is
`course.rewards.gold_reward` (its rule is `GOLD_RULE`). Parts, in order:

* ``sft``: the starting model on the validation prompts (`course.policy_eval.evaluate_policy`: greedy exact match,
  pass@1..8 at temperature 1, gold reward, length).
* ``pairs``: on-policy preference pairs (`course.preferences.sample_pairs`: 8 replies per prompt, best vs worst by
  the gold reward, 20% of the labels swapped) from the train and validation splits. Stored as counts and examples;
  the pairs themselves are re-made from their seed (sampling is deterministic on one machine).
* ``rm``: a reward model (`course.rewards.RewardModel`, the SFT body and a linear head) trained with the
  Bradley-Terry loss, three seeds: held-out pair accuracy against the labels as given (ceiling about 1 - noise)
  and against the clean labels, and its calibration.
* ``rm_data``: the same reward model, steps and seeds on a quarter and a half of the training pairs (a fixed
  shuffle, so the smaller sets are nested in the larger): held-out pair accuracy against the number of pairs.
* ``bon``: best-of-N on the validation prompts: 128 replies per prompt, scored by each reward model and by the gold
  reward; the exact expectation over N-subsets (`best_of_n_value`) for N = 1, 2, 4, ... 64 of the gold reward, the
  proxy (reward-model) score and the exact match of the pick, with the analytic KL bound.
* ``dpo``: DPO (`course.dpo.train_dpo`) on the train pairs, a sweep of beta, three seeds each; every model scored on
  the validation prompts (gold reward, exact match, pass@k, KL to SFT) and on the validation pairs (implicit-reward
  accuracy, the change of the chosen and rejected replies' log-probabilities).
* ``rl``: REINFORCE, GRPO and GRPO with a KL penalty (`course.grpo.train_rl`, the verifier's 0/1 reward, fresh
  training prompts every step), three seeds each, with the validation measures at every ``rl_eval_every`` steps.
* ``test``: the test prompts, scored **once**, at the end, for SFT and for the setting of each method that was best
  on validation (best-of-N: the N with the highest validation gold reward; DPO: the beta; RL: the variant), over
  the three seeds.

Results go to ``benchmarks/results/preferences.json`` after every run, so an interrupted grid continues where it
stopped (``--fresh`` starts over). The trained policies are kept under ``runs/preference-grid/`` for the test part.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from course.assistant_tasks import default_tasks  # noqa: E402
from course.data import tinyshakespeare  # noqa: E402
from course.device import seed_everything  # noqa: E402
from course.dpo import reference_logprobs, train_dpo  # noqa: E402
from course.grpo import RLConfig, train_rl  # noqa: E402
from course.policy_eval import evaluate_policy  # noqa: E402
from course.preferences import best_of_n_kl, best_of_n_value, sample_pairs  # noqa: E402
from course.pretrained import load_assistant  # noqa: E402
from course.rewards import (  # noqa: E402
    GOLD_RULE,
    PREFERENCE_TASKS,
    RewardModel,
    calibration_bins,
    gold_reward,
    orient_pairs,
    reward_margins,
    train_reward_model,
)
from course.rollouts import reply_logprobs, sample_group  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "preferences.json"
FULL = {
    "seeds": [0, 1, 2],
    "pref_tasks": list(PREFERENCE_TASKS),  # pairs, reward models, best-of-N, DPO
    "rl_tasks": list(PREFERENCE_TASKS),  # RL with the verifier's reward
    "eval_prompts": 100,  # per task, validation and test
    "eval_samples": 8,
    "pair_k": 8,
    "noise": 0.2,
    "train_pair_prompts": 2000,  # per task
    "val_pair_prompts": 100,
    "rm_steps": 400,
    "rm_lr": 1e-4,
    "rm_data_fractions": [0.25, 0.5],  # the rm_data part: reward models on these shares of the training pairs
    "bon_k": 128,
    "bon_prompts": 100,
    "bon_n": [1, 2, 4, 8, 16, 32, 64],
    "dpo_betas": [0.1, 0.3, 1.0, 3.0],
    "dpo_steps": 100,
    "dpo_lr": 3e-5,
    "rl_variants": {"reinforce": {"method": "reinforce"}, "grpo": {"method": "grpo"},
                    "grpo_kl": {"method": "grpo", "kl_coef": 0.1}},
    "rl_steps": 150,
    "rl_lr": 1e-4,
    "rl_eval_every": 50,
    "rl_eval_prompts": 40,
    "run_dir": "runs/preference-grid",
}
_ALL = ("seeds", "run_dir", "eval_prompts", "eval_samples")
_PAIRS = ("pref_tasks", "pair_k", "noise", "train_pair_prompts", "val_pair_prompts")
PART_KEYS = {  # the settings each part's results depend on: changing one drops those parts only
    "sft": (*_ALL, "pref_tasks", "rl_tasks"),
    "pairs": (*_ALL, *_PAIRS),
    "rm": (*_ALL, *_PAIRS, "rm_steps", "rm_lr"),
    "rm_data": (*_ALL, *_PAIRS, "rm_steps", "rm_lr", "rm_data_fractions"),
    "bon": (*_ALL, *_PAIRS, "rm_steps", "rm_lr", "bon_k", "bon_prompts", "bon_n"),
    "dpo": (*_ALL, *_PAIRS, "dpo_betas", "dpo_steps", "dpo_lr"),
    "rl": (*_ALL, "rl_tasks", "rl_variants", "rl_steps", "rl_lr", "rl_eval_every", "rl_eval_prompts"),
}
PARTS = ("sft", "rm", "rm_data", "bon", "dpo", "rl", "test")
TEST_DEPENDS = {k for part in ("sft", "bon", "dpo", "rl") for k in PART_KEYS[part]}  # what the test part uses
QUICK = {**FULL, "seeds": [0], "eval_prompts": 2, "eval_samples": 4, "pair_k": 4, "train_pair_prompts": 12,
         "val_pair_prompts": 4, "rm_steps": 2, "bon_k": 8, "bon_prompts": 2, "bon_n": [1, 2, 8], "dpo_betas": [0.1],
         "dpo_steps": 2, "rl_steps": 2, "rl_eval_every": 1, "rl_eval_prompts": 1, "run_dir": "/tmp/preference-grid-quick"}


def save(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    tmp.replace(path)


def brief(measures: dict) -> dict:
    """The measures of evaluate_policy, rounded (pass@k keys as strings, for JSON)."""
    out = {}
    for name, m in measures.items():
        out[name] = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in m.items() if k != "pass_at_k"}
        out[name]["pass_at_k"] = {str(k): round(v, 5) for k, v in m["pass_at_k"].items()}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a tiny grid into /tmp: checks the script, nothing else")
    ap.add_argument("--fresh", action="store_true", help="start over instead of continuing the results file")
    ap.add_argument("--out", type=Path, default=None, help="results file (default benchmarks/results/preferences.json)")
    ap.add_argument("--parts", default=None, help=f"only these parts, comma-separated ({', '.join(PARTS)}); default all")
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    path = args.out or (Path("/tmp/preference-grid-quick.json") if args.quick else RESULTS)
    if tinyshakespeare().is_fallback:
        print("Tiny Shakespeare is not available: the grid must run on it.", file=sys.stderr)
        return 2
    results = {} if args.fresh or not path.exists() else json.loads(path.read_text())
    parts = PARTS if args.parts is None else tuple(p.strip() for p in args.parts.split(","))
    unknown = set(parts) - set(PARTS)
    if unknown:
        print(f"unknown parts {sorted(unknown)}: choose from {', '.join(PARTS)}.", file=sys.stderr)
        return 2
    stored = results.get("config")
    if stored is not None:
        for key in ("pref_tasks", "rl_tasks"):  # files made before the task sets were settings: arithmetic
            stored.setdefault(key, list(PREFERENCE_TASKS))
        if "validation" in results.get("sft", {}):  # the same files kept one SFT evaluation for both
            results["sft"] = {"pref": dict(results["sft"]), "rl": dict(results["sft"])}
        changed = {k for k in set(stored) | set(cfg) if stored.get(k) != cfg.get(k)}
        for part, keys in PART_KEYS.items():
            if changed & set(keys) and part in results:
                print(f"settings {sorted(changed & set(keys))} changed: the {part} part starts over")
                del results[part]
                results["seconds"] = {k: v for k, v in results.get("seconds", {}).items()
                                      if k.split("/")[0] != part}
        if changed & TEST_DEPENDS and "test" in results:
            print(f"settings {sorted(changed & TEST_DEPENDS)} changed: the test part starts over")
            del results["test"]
    results["config"] = cfg
    results["gold_rule"] = GOLD_RULE
    results.setdefault("seconds", {})
    results["machine"] = {"cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                          "threads": torch.get_num_threads()}
    run_dir = ROOT / cfg["run_dir"]
    run_dir.mkdir(parents=True, exist_ok=True)
    seeds, t_all = cfg["seeds"], time.perf_counter()

    def timed(key: str, start: float) -> None:
        results["seconds"][key] = round(time.perf_counter() - start, 1)
        save(results, path)

    sft, tok = load_assistant()
    everything = default_tasks()
    tasks = {name: everything[name] for name in cfg["pref_tasks"]}
    rl_tasks = {name: everything[name] for name in cfg["rl_tasks"]}

    def evaluate(model, split: str, prompts: int | None = None, on: dict | None = None) -> dict:
        return brief(evaluate_policy(model, tok, tasks if on is None else on, split, prompts or cfg["eval_prompts"],
                                     samples=cfg["eval_samples"], reference=sft, seed=0))

    if "sft" in parts and "sft" not in results:
        t = time.perf_counter()
        results["sft"] = {"pref": {"validation": evaluate(sft, "validation")},
                          "rl": {"validation": evaluate(sft, "validation", on=rl_tasks)}}
        timed("sft", t)
    # ------------------------------------------------------------------ pairs (re-made every call: deterministic)
    need_pairs = bool(set(parts) & {"rm", "rm_data", "bon", "dpo", "test"})
    if need_pairs:
        t = time.perf_counter()
        train_pairs = sample_pairs(sft, tok, tasks, "train", cfg["train_pair_prompts"], k=cfg["pair_k"],
                                   noise=cfg["noise"], seed=0)
        val_pairs = sample_pairs(sft, tok, tasks, "validation", cfg["val_pair_prompts"], k=cfg["pair_k"],
                                 noise=cfg["noise"], seed=1)
        summary = {}
        for name, ps in (("train", train_pairs), ("validation", val_pairs)):
            summary[name] = {
                "prompts": ps.prompts, "ties": ps.ties, "pairs": len(ps.pairs), "flipped": sum(p.flipped for p in ps.pairs),
                "chosen_right": sum(max(p.gold_chosen, p.gold_rejected) == 1.0 for p in ps.pairs),
                "examples": [{"task": p.task, "chosen": p.chosen_text, "rejected": p.rejected_text,
                              "gold": [round(p.gold_chosen, 4), round(p.gold_rejected, 4)], "flipped": p.flipped}
                             for p in ps.pairs[:12]],
            }
        if "pairs" in results and results["pairs"]["train"]["pairs"] != summary["train"]["pairs"]:
            print("the re-made pairs differ from the stored ones (another machine's sampling?): use --fresh.",
                  file=sys.stderr)
            return 2
        results["pairs"] = summary
        timed("pairs", t)
        clean_val = torch.tensor([not p.flipped for p in val_pairs.pairs])

        # ------------------------------------------------------------------ reward models
        rm_part = results.setdefault("rm", {}) if set(parts) & {"rm", "bon", "test"} else {}
        rms: dict[int, RewardModel] = {}
        for seed in seeds if set(parts) & {"rm", "bon", "test"} else []:
            key, file = str(seed), run_dir / f"rm-{seed}.pt"
            rm = RewardModel(sft)
            if key in rm_part and file.exists():
                rm.load_state_dict(torch.load(file))
                rms[seed] = rm.eval()
                continue
            t = time.perf_counter()
            seed_everything(seed)
            rm = RewardModel(sft)
            log = train_reward_model(rm, train_pairs.pairs, tok.end_id, steps=cfg["rm_steps"], lr=cfg["rm_lr"], seed=seed,
                                     log_every=max(cfg["rm_steps"] // 8, 1), val_pairs=val_pairs.pairs)
            margins = reward_margins(rm, val_pairs.pairs, tok.end_id)
            oriented, a_won = orient_pairs(margins, torch.zeros_like(margins), seed=seed)
            rm_part[key] = {
                "curve": log["rows"], "train_seconds": round(log["seconds"], 1),
                "val_accuracy_labels": float((margins > 0).float().mean()),
                "val_accuracy_clean": float(((margins > 0) == clean_val).float().mean()),
                "calibration": calibration_bins(oriented, a_won),
            }
            torch.save(rm.state_dict(), file)
            rms[seed] = rm
            timed(f"rm/{key}", t)

        # ------------------------------------------------------------------ reward models on fewer pairs
        data_part = results.setdefault("rm_data", {}) if "rm_data" in parts else {}
        order = torch.randperm(len(train_pairs.pairs), generator=torch.Generator().manual_seed(0)).tolist()
        for fraction in cfg["rm_data_fractions"] if "rm_data" in parts else []:
            subset = [train_pairs.pairs[i] for i in order[: round(fraction * len(order))]]
            for seed in seeds:
                key = f"{fraction}/{seed}"
                if key in data_part:
                    continue
                t = time.perf_counter()
                seed_everything(seed)
                rm = RewardModel(sft)
                log = train_reward_model(rm, subset, tok.end_id, steps=cfg["rm_steps"], lr=cfg["rm_lr"], seed=seed,
                                         batch_size=min(32, len(subset)),  # 32 in the full grid; --quick has fewer
                                         log_every=max(cfg["rm_steps"] // 8, 1), val_pairs=val_pairs.pairs)
                margins = reward_margins(rm, val_pairs.pairs, tok.end_id)
                data_part[key] = {
                    "pairs": len(subset), "curve": log["rows"], "train_seconds": round(log["seconds"], 1),
                    "val_accuracy_labels": float((margins > 0).float().mean()),
                    "val_accuracy_clean": float(((margins > 0) == clean_val).float().mean()),
                }
                timed(f"rm_data/{key}", t)

        # ------------------------------------------------------------------ best-of-N
        def bon_table(split: str, prompts: int, ns: list[int]) -> dict:
            gen = torch.Generator().manual_seed(0)
            per_n = {str(n): {"gold": {}, "proxy": {}, "exact": {}, "length": {}} for n in ns}
            oracle = {str(n): 0.0 for n in ns}
            oracle_length = {str(n): 0.0 for n in ns}  # the length of the gold reward's own pick
            count = 0
            scored = {seed: [] for seed in seeds}
            golds_all, lengths_all = [], []
            for name, task in tasks.items():
                for i in range(prompts):
                    ex = task.make(i, split)
                    group = sample_group(sft, tok, ex.prompt, cfg["bon_k"], generator=gen)
                    golds = [gold_reward(task, ex, r.text) for r in group]
                    golds_all.append(golds)
                    lengths_all.append([float(len(r.text)) for r in group])
                    with torch.no_grad():
                        for seed, rm in rms.items():
                            scored[seed].append(rm.score([r.prompt_ids for r in group], [r.reply_ids for r in group],
                                                         tok.end_id).tolist())
                    count += 1
            for n in ns:
                oracle[str(n)] = sum(best_of_n_value(g, g, n) for g in golds_all) / count
                oracle_length[str(n)] = sum(best_of_n_value(g, ln, n) for g, ln in zip(golds_all, lengths_all)) / count
                for seed in seeds:
                    s = str(seed)
                    pairs = list(zip(scored[seed], golds_all))
                    per_n[str(n)]["length"][s] = sum(best_of_n_value(sc, ln, n) for sc, ln in
                                                     zip(scored[seed], lengths_all)) / count
                    per_n[str(n)]["gold"][s] = sum(best_of_n_value(sc, g, n) for sc, g in pairs) / count
                    per_n[str(n)]["proxy"][s] = sum(best_of_n_value(sc, sc, n) for sc, _ in pairs) / count
                    per_n[str(n)]["exact"][s] = sum(best_of_n_value(sc, [float(x == 1.0) for x in g], n)
                                                    for sc, g in pairs) / count
            return {"prompts": count, "k": cfg["bon_k"], "by_n": per_n, "gold_oracle": oracle, "oracle_length": oracle_length,
                    "kl_bound": {str(n): best_of_n_kl(n) for n in ns}}

        if "bon" in parts and "bon" not in results:
            t = time.perf_counter()
            results["bon"] = {"validation": bon_table("validation", cfg["bon_prompts"], cfg["bon_n"])}
            timed("bon", t)

        # ------------------------------------------------------------------ DPO
        dpo_part = results.setdefault("dpo", {}) if "dpo" in parts or "test" in parts else {}
        ref_c = ref_r = val_ref_c = val_ref_r = None
        for beta in cfg["dpo_betas"] if "dpo" in parts else []:
            for seed in seeds:
                key = f"{beta}/{seed}"
                if key in dpo_part and (run_dir / f"dpo-{beta}-{seed}.pt").exists():
                    continue
                if ref_c is None:
                    ref_c, ref_r = reference_logprobs(sft, tok, train_pairs.pairs)
                    val_ref_c, val_ref_r = reference_logprobs(sft, tok, val_pairs.pairs)
                t = time.perf_counter()
                seed_everything(seed)
                policy = copy.deepcopy(sft)
                log = train_dpo(policy, tok, train_pairs.pairs, ref_c, ref_r, beta=beta, steps=cfg["dpo_steps"],
                                lr=cfg["dpo_lr"], seed=seed, log_every=max(cfg["dpo_steps"] // 10, 1))
                with torch.no_grad():
                    prompts = [p.prompt_ids for p in val_pairs.pairs]
                    pc = reply_logprobs(policy, tok, prompts, [p.chosen for p in val_pairs.pairs]).sums.cpu()
                    pr = reply_logprobs(policy, tok, prompts, [p.rejected for p in val_pairs.pairs]).sums.cpu()
                implicit = beta * ((pc - val_ref_c) - (pr - val_ref_r))
                dpo_part[key] = {
                    "curve": log.rows, "train_seconds": round(log.seconds, 1),
                    "validation": evaluate(policy, "validation"),
                    "val_pairs": {"implicit_accuracy_labels": float((implicit > 0).float().mean()),
                                  "implicit_accuracy_clean": float(((implicit > 0) == clean_val).float().mean()),
                                  "chosen_logp_change": float((pc - val_ref_c).mean()),
                                  "rejected_logp_change": float((pr - val_ref_r).mean())},
                }
                torch.save(policy.state_dict(), run_dir / f"dpo-{beta}-{seed}.pt")
                timed(f"dpo/{key}", t)

    # ------------------------------------------------------------------ RL
    rl_part = results.setdefault("rl", {}) if "rl" in parts or "test" in parts else {}
    for variant, settings in cfg["rl_variants"].items() if "rl" in parts else []:
        for seed in seeds:
            key = f"{variant}/{seed}"
            if key in rl_part and (run_dir / f"rl-{variant}-{seed}.pt").exists():
                continue
            t = time.perf_counter()
            seed_everything(seed)
            policy = copy.deepcopy(sft)
            every = cfg["rl_eval_every"]
            curve = [{"step": 0, **evaluate(policy, "validation", cfg["rl_eval_prompts"], on=rl_tasks)["all"]}]

            def on_step(step: int, model) -> None:
                if step % every == 0:
                    curve.append({"step": step,
                                  **evaluate(model, "validation", cfg["rl_eval_prompts"], on=rl_tasks)["all"]})

            hist = train_rl(policy, sft, tok, rl_tasks, RLConfig(steps=cfg["rl_steps"], lr=cfg["rl_lr"], **settings),
                            seed=seed, on_step=on_step)
            rows, train_seconds = hist.rows, hist.seconds
            rl_part[key] = {"steps": rows, "curve": curve, "train_seconds": round(train_seconds, 1),
                            "validation": evaluate(policy, "validation", on=rl_tasks)}
            torch.save(policy.state_dict(), run_dir / f"rl-{variant}-{seed}.pt")
            timed(f"rl/{key}", t)

    # ------------------------------------------------------------------ the test split, once
    if "test" in parts and "test" not in results:
        t = time.perf_counter()
        mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
        best_n = max(cfg["bon_n"], key=lambda n: mean(list(results["bon"]["validation"]["by_n"][str(n)]["gold"].values())))
        best_beta = max(cfg["dpo_betas"], key=lambda b: mean([dpo_part[f"{b}/{s}"]["validation"]["all"]["gold"]
                                                                for s in seeds]))
        best_rl = max(cfg["rl_variants"], key=lambda v: mean([rl_part[f"{v}/{s}"]["validation"]["all"]["pass_at_k"]["1"]
                                                               for s in seeds]))
        test = {"chosen_on_validation": {"bon_n": best_n, "dpo_beta": best_beta, "rl_variant": best_rl},
                "sft": {"pref": evaluate(sft, "test"), "rl": evaluate(sft, "test", on=rl_tasks)},
                "bon": bon_table("test", cfg["eval_prompts"], [best_n]), "dpo": {}, "rl": {}}
        for seed in seeds:
            policy = copy.deepcopy(sft)
            policy.load_state_dict(torch.load(run_dir / f"dpo-{best_beta}-{seed}.pt"))
            test["dpo"][str(seed)] = evaluate(policy, "test")
            policy.load_state_dict(torch.load(run_dir / f"rl-{best_rl}-{seed}.pt"))
            test["rl"][str(seed)] = evaluate(policy, "test", on=rl_tasks)
        results["test"] = test
        timed("test", t)
    results["total_seconds_this_call"] = round(time.perf_counter() - t_all, 1)
    save(results, path)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
