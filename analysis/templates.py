"""The report's prose (analysis/report.py): every sentence, heading and caption of results/report/README.md, as
str.format templates with named fields; report.py computes the fields and fills them in, and holds no prose.

A template is a Markdown fragment as it appears on the page: "\\n" starts a new line, so an empty line
before a paragraph is a leading "\\n". Format specs ({minutes:.1f}) live here, beside the words they
belong to. Fill a template with fill() (lines of the page) or str.format (a phrase inside another).
"""

from __future__ import annotations


def fill(template: str, **fields) -> list[str]:
    """The template with its fields filled in, as the page's lines (report.py joins every line with "\\n")."""
    return template.format(**fields).split("\n")


# the page's head, and the runs of each sweep
HEADER = ("# vljepa-bench report\n"
          "\n"
          "Built by `python -m analysis.report --results {results} --out {out}` from {runs} runs. Mean ± 95% t-interval "
          "over seeds; chance in brackets (and the no-vision prior, in records that carry it); paper numbers from "
          "results/reference/ (arXiv 2512.10942, version and table in each CSV row).")
RUNS_HEAD = ("\n"
             "## Runs\n"
             "\n"
             "| sweep | status | runs |\n"
             "|---|---|---:|")
RUNS_ROW = "| {sweep} | {status} | {runs} |"
PARTIAL = "\n{count} run(s) not done are shown where they have records: {runs}"
PARTIAL_RUN = "{run_id} ({status})"

# each sweep's section opens with the command that reproduces it and what it cost
COMMAND = "`python -m bench.sweep {file}{overrides}`"
SWEEP_HEAD = ("\n"
              "## {sweep}\n"
              "\n"
              "Produced by {command}. {wall}")
WALL = ("Wall time: {minutes:.1f} min summed over its {runs} runs ({shortest:.0f}-{longest:.0f} s per run, start-up and "
        "evaluation included).")
ONE_OFF = " Of it, {minutes:.1f} min was start-up before the first step ({one_off:.1f} min in the slowest: the one-off \
work of a machine's first run, pretraining the LM and building the caches, is in it)."
TUNING = ("\n"
          "Tuned: `{key}` per arm, each arm's value the one with the {goal} mean over seeds of {metric} on {select} at the "
          "full budget (bold; mean ± 95% over seeds, seeds in brackets). Every number below this table is read at the "
          "chosen values on {report}, which the choice never saw; the runs at the other values are listed under the "
          "sweep's name + \" (tuning)\".\n"
          "\n"
          "{table}")
NO_RUNS = "\nNone of its {runs} runs has a run record in this store yet."
IMAGE = "![{stem}]({png}) ([pdf]({pdf}))"

# a controlled comparison (a sweep with several models)
COMPARISON_FIGURE = ("\n"
                     "{image}\n"
                     "\n"
                     "*Sample efficiency, {sweep}: {models} at matched samples ({command}); lines: the mean over seeds; "
                     "bands: its 95% t-interval; dotted: chance; hollow diamonds: the paper's numbers for the same "
                     "comparison at its sample counts, on its benchmarks (results/reference/controlled_comparison.csv); "
                     "lower row, where records carry them: the same curves against training FLOPs.*\n")
COMPARISON_FACTS = ("\n"
                    "What the captions get right, fact by fact (percent of items, mean ± 95% over seeds; analysis/captions.py "
                    "reads each caption's facts back; size over the captions that state one; the prior: one constant "
                    "caption's score):\n"
                    "\n"
                    "{table}")

CAPTION_WORDING = ("\n"
                   "CIDEr as written and in canonical wording (captions and references with every synonym mapped to the "
                   "first of its slot and the template's frame dropped, bench.data.text.canonical_wording: it scores "
                   "the facts a caption states, not the synonyms it picked), and the share of captions stating each "
                   "fact a caption may leave out, among the clips that have it (mean ± 95% over seeds):\n"
                   "\n"
                   "{table}")

# an ablation (a sweep with one model): a table per setting, a chart, its LaTeX
ABLATION_NOT_DONE = ("\n"
                     "No run of this sweep has reached its budget yet: no table.")
ABLATION_CAPTION = "*Ablation {sweep} over `{key}`, at the final sample count ({command}).*"
ABLATION_LATEX_CAPTION = "Ablation {sweep} ({key})"
ABLATION = ("\n"
            "{table}\n"
            "\n"
            "{image}\n"
            "\n"
            "*Bars: the mean over seeds at the final sample count; whiskers: its 95% t-interval; {marks}.*\n"
            "\n"
            "LaTeX: [{latex}]({latex})")
# what the chart's marks are, by the columns its table shows (analysis/tables.py)
ABLATION_MARKS_PAPER = "dotted: chance; white diamonds: the paper's Table 5 row for the setting"
ABLATION_MARKS_CAPTIONS = "CIDEr x100 of the captions, of the decoder's ceiling and of the nearest training caption"
ABLATION_FACTS = ("\n"
                  "What each setting's captions get right, fact by fact (as in the comparison sections: percent of items, "
                  "mean ± 95% over seeds):\n"
                  "\n"
                  "{table}")

# selective decoding (a sweep that evaluates the streaming task)
SELECTIVE_FIGURE = ("\n"
                    "{image}\n"
                    "\n"
                    "*Selective decoding, {sweep} ({command}): {factor}. Lines: the mean over seeds (bands: 95% t-interval "
                    "for the two the factor is read from); dotted: uniform's CIDEr at the reference rate (monotone fit); the "
                    "arrow: the rate at which adaptive decoding's monotone fit reaches it.*")
SELECTIVE_RUNS = ("\n"
                  "Each run's own reading (pooled strategies; bench/eval/tasks/streaming.py): the factor and gap with 95% "
                  "intervals from a bootstrap over its streams, and the control that shows how much of a factor saturation "
                  "alone gives:\n"
                  "\n"
                  "{table}")

# every sweep: the power of its paired comparisons, its evaluation noise, its training loss
POWER = ("\n"
         "Power of each paired comparison (seed SD of the difference, and the part of it the evaluation items alone would "
         "give, from the records' standard errors; the smallest difference a paired t-test finds with 80% power at these "
         "seeds; the seeds the paper's difference would need):\n"
         "\n"
         "{table}")
NOISE = ("\n"
         "Evaluation noise beside seed noise, at each evaluation size the runs kept per-item hits for (the training's last "
         "evaluation, and re-evaluations of the last checkpoint by `python -m bench.eval RUN --size N --name NAME`): the "
         "split-half standard error of one seed's difference from the items alone (analysis/evalnoise.py), beside the seed "
         "SD of the difference:\n"
         "\n"
         "{table}")
TRAINING_LOSS = ("\n"
                 "{image}\n"
                 "\n"
                 "*Training loss, {sweep}: each seed a thin line, their mean a thick one (metrics.jsonl: the average over "
                 "each window of logged steps).*")

# after the sweeps: the literature, the reference models measured here, and each dataset beside the paper
LITERATURE = ("\n"
              "## Literature, and the suite's runs beside it\n"
              "\n"
              "Literature rows cite their source (the paper's own rows, and the baselines it cites). A row *(measured "
              "here)* is an off-the-shelf model evaluated by this suite (`python -m bench.eval hf:...`); it sits under a "
              "benchmark's literature rows only where its eval set is that benchmark by its registry name (or, for an "
              "\"(8 sets)\" average, the mean over exactly the paper's sets), and its source says what it was measured "
              "on. Numbers a reference model measured on the shapes world are in a table of their own below, never under "
              "a benchmark.\n"
              "\n"
              "{table}\n")
MEASURED_MODELS = ("### Reference models measured here\n"
                   "\n"
                   "Each off-the-shelf model this store holds records of (docs/reference_models.md): its weights, the clip "
                   "shape it read its eval sets at, what it was evaluated on, and what it was not: *n/a* is a task the model "
                   "cannot do (not a failure), *failed* a task whose evaluation broke; the footnotes say why.\n"
                   "\n"
                   "{table}\n")
MEASURED_SHAPES = ("### Reference models on the shapes world\n"
                   "\n"
                   "The suite's procedural clips, not a benchmark: no number in these tables compares with a literature "
                   "number above. One table per eval set; each task's headline metric, chance in brackets.\n"
                   "\n"
                   "{tables}\n")
MEASURED_SHAPES_SET = ("*On {where}:*\n"
                       "\n"
                       "{table}")
PER_DATASET = ("## Per dataset, beside the paper\n"
               "\n"
               "Each run's number on each dataset it was evaluated on, at its full budget, and the paper's number for that "
               "dataset; a task's mean over its sets is beside the paper's average only where the sets are the paper's. "
               "Rows *(measured here)* are reference models; the paper's number is beside one only where its set is the "
               "paper's dataset by its registry name (a folder given by its path is matched to no benchmark).\n"
               "\n"
               "{table}\n")
