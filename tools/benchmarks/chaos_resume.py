"""Kill a multi-process training run anywhere, many times, and check that resuming loses nothing.

    python -m tools.benchmarks.chaos_resume [--recipes vit swin lomar] [--kills 20 5 5]
        [--procs 2] [--iters 24] [--ckpt-interval 3] [--seed 0] [--work-dir DIR] [--out-dir DIR]

For each recipe (a name below or a config path) the harness trains a short run of it with
``tools/dist_train.sh CONFIG PROCS`` (gloo on CPU) twice: uninterrupted (the reference) and under a
seeded plan of ``SIGKILL``s. Each kill is sent a random fraction into one of four phases (the
train step of an iteration, the loading of a batch, the write of a checkpoint, the restore of a
resume), alternately to the launcher's process group and to one worker; after each, every process
of the run must be gone (checked by PID), and the run goes on with ``--resume``. The harness
widens the checkpoint-write and restore windows and slows data loading through its probes
(:mod:`.chaos_hooks`), added to a copy of the recipe's config only.

Checked at the end, per recipe: the final weights, optimizer state, schedulers and random states
and every iteration's losses (of every attempt, on every rank) equal the reference's bit for bit;
every checkpoint ``last_checkpoint`` ever named is whole and loads; each kill loses at most the
iterations since the last checkpoint reported whole. Writes ``chaos_resume.json`` / ``.md`` (with
the provenance header) to ``--out-dir``; exits 1 when a check fails.
"""
import argparse
import os
import os.path as osp
import shutil
import signal
import socket
import sys
import time

from mmengine.config import Config

from localmim_mm.runtime.launch.work_dir_lock import live_holder

from .chaos_campaign import (PHASES, Campaign, differences, final_state, launch, plan_kills,
                             processes_with_token, read_losses, save_iterations)
from .core import REPO
from .core.provenance import Provenance
from .core.report import output_stem, write_outputs

RECIPES = {
    'vit': 'configs/localmim/localmim_vit-tiny-p8_1xb32-coslr-20e_sample.py',
    'swin': 'configs/localmim/localmim_swin-tiny_1xb32-coslr-20e_sample.py',
    'lomar': 'configs/lomar/lomar_vit-tiny-p8_1xb32-coslr-20e_sample.py',
}
MARK = '.chaos_resume'  # a work dir the harness made (and may clear)


class CountsProvenance(Provenance):
    """The campaign counts kills, recoveries and lost iterations; it times nothing, so a busy
    machine does not make its figures untrustworthy: the load is recorded, not checked."""

    def _check(self, when: str, load: float, limit: float) -> None:
        pass


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--recipes', nargs='+', default=['vit', 'swin', 'lomar'],
                        help=f'names ({", ".join(RECIPES)}) or config paths')
    parser.add_argument('--kills', type=int, nargs='+', default=[20, 5, 5],
                        help='kills per recipe (one number: the same for all)')
    parser.add_argument('--iters', type=int, nargs='+', default=[24, 12, 12],
                        help='training iterations per recipe (one number: the same for all)')
    parser.add_argument('--procs', type=int, default=2, help='processes per run')
    parser.add_argument('--batch', type=int, default=4, help='samples per process and step')
    parser.add_argument('--iters-per-epoch', type=int, default=4)
    parser.add_argument('--ckpt-interval', type=int, default=3,
                        help='checkpoint every N iterations (the recipe\'s checkpoint hook, '
                        'by iteration)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seeds the runs; the kill plan of the i-th recipe is drawn with '
                        'seed + i')
    parser.add_argument('--ckpt-write-s', type=float, default=1.0,
                        help='seconds a checkpoint file takes to write (the slow disk)')
    parser.add_argument('--restore-s', type=float, default=1.0,
                        help='seconds a resume waits after loading its checkpoint')
    parser.add_argument('--load-s', type=float, default=0.1,
                        help='seconds each sample takes to load')
    parser.add_argument('--timeout', type=float, default=600,
                        help='seconds one run may take to reach its kill or its end')
    parser.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'chaos_resume'))
    parser.add_argument('--out-dir', default=osp.join(REPO, 'docs', 'results'))
    parser.add_argument('--tag', help='suffix of the output files (chaos_resume_TAG.json)')
    return parser.parse_args(argv)


def per_recipe(values, recipes, flag):
    if len(values) == 1:
        return values * len(recipes)
    if len(values) < len(recipes):
        raise SystemExit(f'{flag} {" ".join(map(str, values))}: give one value, or one per '
                         f'recipe ({len(recipes)})')
    return values[:len(recipes)]


# ------------------------------------------------------------------ checks before anything starts
def recipe_path(name: str) -> str:
    path = RECIPES.get(name, name)
    full = path if osp.isabs(path) else osp.join(REPO, path)
    if not osp.isfile(full):
        raise SystemExit(f'--recipes {name}: no such recipe; give one of {", ".join(RECIPES)} '
                         'or a config path')
    return full


def chaos_config(args, name: str, iters: int) -> Config:
    """The recipe with the campaign's run length, seed and probes (the recipe file is not
    touched); refuses a recipe that does not checkpoint."""
    cfg = Config.fromfile(recipe_path(name))
    ckpt = (cfg.get('default_hooks') or {}).get('checkpoint')
    if not ckpt:
        raise SystemExit(f'--recipes {name}: the recipe does not checkpoint (default_hooks.'
                         f'checkpoint={ckpt!r}), so a killed run could only start over; '
                         'give a recipe with a checkpoint hook')
    if args.ckpt_interval < 1 or args.ckpt_interval > iters:
        raise SystemExit(f'--ckpt-interval {args.ckpt_interval}: the run of {iters} iterations '
                         'would write no checkpoint before its end; give 1 to --iters')
    if iters % args.iters_per_epoch:
        raise SystemExit(f'--iters {iters}: give a multiple of --iters-per-epoch '
                         f'{args.iters_per_epoch}')
    ckpt.update(by_epoch=False, interval=args.ckpt_interval)
    cfg.default_hooks.logger = dict(cfg.default_hooks.get('logger') or {}, interval=1)
    loader = cfg.train_dataloader
    loader.update(batch_size=args.batch, num_workers=2, persistent_workers=True)
    loader.dataset.indices = args.iters_per_epoch * args.batch * args.procs
    loader.dataset.pipeline = [dict(type='ChaosSlowLoad', seconds=args.load_s),
                               *loader.dataset.pipeline]
    cfg.train_cfg.max_epochs = iters // args.iters_per_epoch
    cfg.randomness = dict(seed=args.seed, diff_rank_seed=True, deterministic=True)
    imports = dict(cfg.get('custom_imports') or dict(imports=[]))
    imports['imports'] = [*imports.get('imports', []), 'tools.benchmarks.chaos_hooks']
    imports['allow_failed_imports'] = False
    cfg.custom_imports = imports
    cfg.custom_hooks = [*(cfg.get('custom_hooks') or []), dict(type='ChaosLossHook'),
                        dict(type='ChaosProbeHook', ckpt_write_s=args.ckpt_write_s,
                             restore_s=args.restore_s)]
    return cfg


def check_work_dir(path: str) -> None:
    """Refuse a work dir a live training run holds, or one the harness did not make."""
    holder = live_holder(path)
    if holder is not None:
        raise SystemExit(f'--work-dir {path} is in use by a live training run ({holder}); wait '
                         'for it, stop it, or pass another --work-dir')
    if osp.isdir(path) and os.listdir(path) and not osp.exists(osp.join(path, MARK)):
        raise SystemExit(f'--work-dir {path} holds files the harness did not write; pass an '
                         'empty or new --work-dir')


def prepare(args) -> list:
    """Every recipe's config, kill plan and work dirs, checked before any run starts."""
    kills = per_recipe(args.kills, args.recipes, '--kills')
    iters = per_recipe(args.iters, args.recipes, '--iters')
    if args.procs < 2:
        raise SystemExit(f'--procs {args.procs}: the campaign kills single workers; give 2 or '
                         'more')
    jobs = []
    for index, (name, n_kills, n_iters) in enumerate(zip(args.recipes, kills, iters)):
        if n_kills > n_iters:
            raise SystemExit(f'--kills {n_kills} for {name}: more kills than the run\'s {n_iters} '
                             'iterations (each kill lands at its own iteration); give fewer '
                             'kills or more --iters')
        cfg = chaos_config(args, name, n_iters)
        saves = save_iterations(n_iters, args.ckpt_interval)
        epoch_starts = list(range(args.iters_per_epoch + 1, n_iters + 1, args.iters_per_epoch))
        try:
            plan = plan_kills(n_kills, n_iters, saves, epoch_starts, args.procs,
                              args.seed + index)  # each recipe its own plan
        except ValueError as err:
            raise SystemExit(f'--kills {n_kills} for {name}: {err}; give fewer kills or more '
                             '--iters') from None
        root = osp.join(osp.abspath(args.work_dir), osp.basename(name).replace('.py', ''))
        for run in ('reference', 'chaos'):
            check_work_dir(osp.join(root, run))
        jobs.append(dict(name=name, cfg=cfg, iters=n_iters, saves=saves, plan=plan, root=root))
    return jobs


# ------------------------------------------------------------------ one recipe
def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def fresh_dir(path: str) -> str:
    if osp.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)
    open(osp.join(path, MARK), 'w').close()
    return path


def run_recipe(args, job) -> dict:
    root = job['root']
    os.makedirs(root, exist_ok=True)
    config = osp.join(root, 'chaos_cfg.py')
    job['cfg'].dump(config)
    ref_dir, chaos_dir = fresh_dir(osp.join(root, 'reference')), fresh_dir(osp.join(root, 'chaos'))
    print(f'{job["name"]}: {job["iters"]} iterations x {args.procs} processes, checkpoints at '
          f'{job["saves"]}, {len(job["plan"])} kills', flush=True)
    ref_token = f'reference-{time.time_ns()}'
    reference = launch(config, ref_dir, args.procs, 0, ref_token, free_port(), resume=False)
    campaign = Campaign(config, chaos_dir, args.procs, job['plan'], free_port(),
                        args.ckpt_write_s, args.restore_s, args.batch * args.load_s,
                        log=lambda line: print(line, flush=True))
    started = time.time()
    try:
        campaign.run(args.timeout)
        reference.wait(timeout=args.timeout)
    finally:  # also when the harness is stopped: leave no run behind
        for token in (ref_token, campaign.token):
            for pid in processes_with_token(token):
                os.kill(pid, signal.SIGKILL)
        reference.wait()
    if reference.returncode != 0:
        raise SystemExit(f'{job["name"]}: the reference run exited {reference.returncode}; see '
                         f'{ref_dir}/attempt0.out')
    result = compare(job, ref_dir, chaos_dir, args.procs)
    result.update(kills=campaign.kills, unreadable_checkpoints=campaign.unreadable,
                  resume_mismatches=campaign.resume_mismatches,
                  reported_checkpoints=len(campaign.reported),
                  seconds=round(time.time() - started, 1))
    result['checks'] = checks(result)
    print(f'{job["name"]}: {summary_line(result)}', flush=True)
    return result


def compare(job, ref_dir: str, chaos_dir: str, procs: int) -> dict:
    """Final state and every recorded loss of the chaos run against the reference."""
    name = f'iter_{job["iters"]}.pth'
    state_diff = differences(final_state(osp.join(ref_dir, name)),
                             final_state(osp.join(chaos_dir, name)))
    loss_diff, missing, records = [], [], 0
    for rank in range(procs):
        expected = {it: losses for _, it, losses in read_losses(ref_dir, rank)}
        got = read_losses(chaos_dir, rank)
        records += len(got)
        missing += [f'rank {rank} iteration {it}' for it in range(1, job['iters'] + 1)
                    if it not in {i for _, i, _ in got}]
        loss_diff += [f'rank {rank} attempt {a} iteration {it}' for a, it, losses in got
                      if losses != expected.get(it)]
    return dict(recipe=job['name'], config=osp.relpath(recipe_path(job['name']), REPO),
                iterations=job['iters'], checkpoints_at=job['saves'], loss_records=records,
                final_state_differences=state_diff[:20], loss_differences=loss_diff[:20],
                missing_iterations=missing[:20])


def checks(result: dict) -> dict:
    kills = result['kills']
    return dict(
        final_state_equal=not result['final_state_differences'],
        losses_equal=not result['loss_differences'] and not result['missing_iterations'],
        reported_checkpoints_readable=not result['unreadable_checkpoints'],
        lost_at_most_since_checkpoint=all(k['lost'] <= k['since_checkpoint'] for k in kills),
        resumed_from_newest_whole=not result['resume_mismatches'],
        all_processes_gone=all(k['all_gone_s'] is not None for k in kills),
        recovered=len(kills))


def summary_line(result: dict) -> str:
    c = result['checks']
    ok = all(v for k, v in c.items() if k != 'recovered')
    return (f'{len(result["kills"])} kills, {c["recovered"]} recoveries, lost '
            f'{[k["lost"] for k in result["kills"]]} iterations; final state equal: '
            f'{c["final_state_equal"]}, losses equal: {c["losses_equal"]}, reported checkpoints '
            f'readable: {c["reported_checkpoints_readable"]} -> {"PASS" if ok else "FAIL"}')


# ------------------------------------------------------------------ output
def markdown(prov: Provenance, results: list, args) -> str:
    lines = ['# Chaos: kill anywhere, many times, resume', '', prov.markdown(),
             f'Seed {args.seed} (kill plans: seed + recipe index); {args.procs} processes '
             f'(gloo, CPU) per run, {args.batch} '
             f'samples per process and step, {args.iters_per_epoch} iterations per epoch, a '
             f'checkpoint every {args.ckpt_interval} iterations; harness windows: checkpoint '
             f'write {args.ckpt_write_s} s, restore {args.restore_s} s, {args.load_s} s per '
             'sample loaded. The load average counts other jobs on the shared cores: these are '
             'counts, not speed figures (the seconds until all processes were gone are those '
             'of this loaded machine).', '',
             '| recipe | kills | recoveries | landed in (iteration / data / checkpoint / restore '
             '/ startup) | iterations lost per kill | kills losing more than the work since the '
             'last checkpoint | final '
             'weights, optimizer, schedulers, RNG equal | losses equal (records) | reported '
             'checkpoints readable |', '|---|---|---|---|---|---|---|---|---|']
    for r in results:
        kills, c = r['kills'], r['checks']
        landed = [sum(k['landed_phase'] == p for k in kills) for p in (*PHASES, 'startup')]
        beyond = sum(k['lost'] > k['since_checkpoint'] for k in kills)
        lines.append(
            f'| {r["recipe"]} | {len(kills)} | {c["recovered"]} | {" / ".join(map(str, landed))} '
            f'| {", ".join(str(k["lost"]) for k in kills)} | {beyond} | '
            f'{"yes" if c["final_state_equal"] else "NO"} | '
            f'{"yes" if c["losses_equal"] else "NO"} ({r["loss_records"]}) | '
            f'{"yes" if c["reported_checkpoints_readable"] else "NO"} '
            f'({r["reported_checkpoints"]}) |')
    for r in results:
        lines += ['', f'## {r["recipe"]} (`{r["config"]}`, {r["iterations"]} iterations, '
                  f'checkpoints after {r["checkpoints_at"]})', '',
                  'Checks: ' + ', '.join(f'{k} {v}' for k, v in r['checks'].items()) + '.', '',
                  '| kill | target | planned | landed (the run: rank 0) '
                  '| processes, all gone after | completed | '
                  'last checkpoint | resumed from | lost |', '|---' * 9 + '|']
        for k in r['kills']:
            target = ('launcher group' if k['target'] == 'group' else
                      f'worker rank {k["rank"]} (it was in {k["killed_worker_phase"]})')
            lines.append(
                f'| {k["kill"]} | {target} | {k["planned_phase"]} @ {k["planned_iteration"]} '
                f'(+{k["fraction"]:.2f}) | {k["landed_phase"]} @ {k["landed_iteration"]} | '
                f'{k["processes"]}, {k["all_gone_s"]} s | {k["completed"]} | '
                f'{k["last_reported"]} | {k["resumes_from"]} | {k["lost"]} |')
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    jobs = prepare(args)  # every refusal comes before any run starts
    stem = output_stem(args.out_dir, 'chaos_resume', args.tag)
    prov = CountsProvenance('chaos_resume', argv, threads=1)
    results = [run_recipe(args, job) for job in jobs]
    header = prov.finish()
    write_outputs(stem, dict(provenance=header, seed=args.seed, procs=args.procs,
                             batch=args.batch, ckpt_interval=args.ckpt_interval,
                             ckpt_write_s=args.ckpt_write_s, restore_s=args.restore_s,
                             load_s=args.load_s, recipes=results),
                  markdown(prov, results, args))
    failed = [r['recipe'] for r in results
              if not all(v for k, v in r['checks'].items() if k != 'recovered')]
    if failed:
        print(f'FAILED: {", ".join(failed)}', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
