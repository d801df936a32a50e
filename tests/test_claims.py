"""What the notebooks' prose says about their own numbers, checked against the numbers (issue 22 item 4).

Each `Claim` below is one statement of a notebook's markdown, with the expression over the values the notebook
records and the tolerance its wording allows (`workbench.claims` gives the convention). The `claims` tier checks them
on the cpu-demo entries of `outputs/records.json` that `make demo` writes (`make claims`; another file with
`WORKBENCH_CLAIMS_RECORDS=path`); a notebook with no entry, or one that ran with SMOKE or another profile, is skipped
with the reason. A statement that no longer holds fails under its own name, with the numbers it read.

Adding a notebook's claims: record every number its prose rests on with `utils.record()` in its last cell, and add
one `Claim` per statement to its block below (the test `test_every_claim_reads_names_its_notebook_records` checks
that the names exist in the notebook's source).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from workbench.claims import (
    Claim,
    about_fraction,
    above,
    at_least,
    at_most,
    below,
    between,
    claim_records,
    equal,
    load_claim_records,
    recordable_names,
    rounds_to,
)
from workbench.notebooks import NOTEBOOK_DIR, list_notebooks, write_records_file
from workbench.utils import outputs_dir

pytest_plugins = ["pytester"]  # the tier is run in a pytester session below

RECORDS = Path(os.environ.get("WORKBENCH_CLAIMS_RECORDS") or outputs_dir() / "records.json")

# -- 01 · data tour -------------------------------------------------------------------------------------------------
NB01 = "01_data_tour"
CLAIMS_01 = [
    Claim("vi_visible_cameras_are_1_2_4_5", NB01, "visible cameras 1, 2, 4, 5", "vi_rgb_cameras", equal([1, 2, 4, 5])),
    Claim("vi_infrared_cameras_are_3_and_6", NB01, "near-infrared cameras 3 and 6", "vi_ir_cameras", equal([3, 6])),
    Claim("ten_gallery_trials", NB01, "draws a fresh gallery ... for each of ten trials", "vi_trials", equal(10)),
    Claim("one_gallery_image_per_identity_and_camera", NB01, "one visible image per identity and camera",
          "vi_gallery - vi_gallery_identity_cameras", equal(0)),
    Claim("indoor_gallery_is_cameras_1_and_2", NB01, "Indoor-search keeps only cameras 1 and 2 in the gallery",
          "vi_indoor_gallery_cameras", equal([1, 2])),
]

# -- 02, 03, 04 · baselines, DAKD, ICRE: the lead's -------------------------------------------------------------------
NB02 = "02_baselines"
CLAIMS_02 = [
    Claim("no_regime_reaches_the_band", NB02, "No regime reaches the band",
          "max(study_a_best_val_rank1, study_b_best_val_rank1, study_c3_best_val_rank1, study_c4_best_val_rank1, "
          "study_d_best_val_rank1, study_e_best_val_rank1, study_f_best_val_rank1, study_g_best_val_rank1)",
          below(0.40)),
    Claim("both_stand_ins_top_out_at_0_32", NB02, "to a best validation rank-1 of 0.32",
          "min(study_a_best_val_rank1, study_d_best_val_rank1)", rounds_to("0.32")),
    Claim("both_stand_ins_top_out_at_0_32_too", NB02, "to a best validation rank-1 of 0.32",
          "max(study_a_best_val_rank1, study_d_best_val_rank1)", rounds_to("0.32")),
    Claim("in_about_3_7_cpu_minutes", NB02, "in about 3.7 CPU minutes", "(study_a_cpu_min + study_d_cpu_min) / 2",
          rounds_to("3.7")),
    Claim("four_more_epochs_add_0_06", NB02, "Four more epochs (e) add 0.06",
          "study_e_best_val_rank1 - study_d_best_val_rank1", rounds_to("0.06")),
    Claim("longer_run_still_below_the_band", NB02, "still below 0.40", "study_e_best_val_rank1", below(0.40)),
    Claim("for_80pct_more_cpu", NB02, "for 80 % more CPU", "study_e_cpu_min / study_d_cpu_min - 1",
          about_fraction(0.8, rel=0.125)),
    Claim("sixteen_epochs_reach_0_38", NB02, "16 epochs (f) reaches 0.38", "study_f_best_val_rank1", rounds_to("0.38")),
    Claim("sixteen_epochs_for_9_cpu_minutes", NB02, "for 9.0 CPU minutes", "study_f_cpu_min", rounds_to("9.0")),
    Claim("sixteen_epochs_cost_two_and_a_half_times_a", NB02, "two and a half times (a)'s cost",
          "study_f_cpu_min / study_a_cpu_min", between(2.25, 2.75)),
    Claim("channel_augmentation_ends_at_0_31", NB02, "(g) ends at 0.31", "study_g_best_val_rank1", rounds_to("0.31")),
    Claim("channel_augmentation_level_with_a", NB02, "level with (a)",
          "abs(study_g_best_val_rank1 - study_a_best_val_rank1)", at_most(0.025)),
    Claim("visible_camera_pairs_keep_0_92", NB02, "the nearest image is the right person 0.92 of the time",
          "vi_val_pairs_rgb_rgb_rank1", rounds_to("0.92")),
    Claim("infrared_camera_pair_only_0_54", NB02, "Even between the two infrared cameras rank-1 is only 0.54",
          "vi_val_pairs_ir_ir_rank1", rounds_to("0.54")),
    Claim("infrared_into_visible_0_39", NB02, "0.39 from an infrared camera into one visible camera",
          "vi_val_pairs_ir_rgb_rank1", rounds_to("0.39")),
    Claim("crossing_keeps_less_than_infrared_pairs", NB02, "crossing the modality keeps less again",
          "max(vi_val_pairs_ir_rgb_rank1, vi_val_pairs_rgb_ir_rank1) - vi_val_pairs_ir_ir_rank1", below(0)),
    Claim("both_halves_know_their_camera", NB02, "both halves know their camera",
          "min(vi_val_probe_rgb_camera, vi_val_probe_ir_camera)", at_least(0.8)),
    Claim("infrared_features_know_their_camera", NB02, "the infrared one perfectly, 1.00",
          "vi_val_probe_ir_camera", rounds_to("1.00")),
    Claim("infrared_identity_probe_0_68", NB02, "the identity is read at 0.68 from infrared features",
          "vi_val_probe_ir_identity", rounds_to("0.68")),
    Claim("visible_identity_probe_0_92", NB02, "against 0.92 from visible ones", "vi_val_probe_rgb_identity",
          rounds_to("0.92")),
    Claim("full_lite0_ends_at_0_26", NB02, "ends at 0.26", "study_b_best_val_rank1", rounds_to("0.26")),
    Claim("full_lite0_below_the_tiny_cnn", NB02, "it stays below the tiny CNN",
          "study_b_best_val_rank1 - study_a_best_val_rank1", below(0)),
    Claim("full_lite0_after_27_cpu_minutes", NB02, "after 27 CPU minutes", "study_b_cpu_min", rounds_to("27")),
    Claim("full_lite0_costs_seven_and_a_half_times_a", NB02, "about seven and a half times (a)'s cost",
          "study_b_cpu_min / study_a_cpu_min", between(7.25, 7.75)),
    Claim("cheaper_lite0_forms_stay_near_0_1", NB02, "stay near 0.1 after 3 to 6 epochs",
          "max(study_c3_best_val_rank1, study_c4_best_val_rank1)", at_most(0.15)),
    Claim("the_fallback_keeps_a", NB02, "That is (a), the regime the demo already used", "study_chosen", equal(["a"])),
    Claim("vi_baseline_stays_under_the_band", NB02, "The visible-infrared baseline below therefore stays under the band",
          "vi_val_rank1", below(0.40)),
]
NB03 = "03_dakd"
CLAIMS_03 = [
    Claim("dakd_does_not_win", NB03, "In this miniature DAKD does not win",
          "max(student_mAP, student_from_baseline_mAP) - baseline_mAP", below(0)),
    Claim("teacher_far_below_the_baseline", NB03, "The MCE teacher ends far below the plain baseline",
          "teacher_mAP / baseline_mAP", below(0.6)),
    Claim("mce_student_at_about_its_teachers_level", NB03, "The student of the MCE teacher lands at about its teacher's level",
          "abs(student_mAP - teacher_mAP)", at_most(0.02)),
    Claim("baseline_student_keeps_less_than_half", NB03, "The student of the baseline keeps less than half of the baseline's mAP",
          "student_from_baseline_mAP / baseline_mAP", below(0.5)),
    Claim("students_look_better_on_validation", NB03, "On the validation identities the students look better than on the test split",
          "student_from_baseline_val_rank1 - student_from_baseline_rank1", above(0)),
    Claim("mce_student_better_on_101", NB03, "better on 101 of 436 queries", "paired_mce_better", equal(101)),
    Claim("mce_student_worse_on_335", NB03, "and worse on 335", "paired_mce_worse", equal(335)),
    Claim("baseline_student_better_on_107", NB03, "the student of the baseline better on 107",
          "paired_baseline_teacher_better", equal(107)),
    Claim("baseline_student_worse_on_329", NB03, "and worse on 329", "paired_baseline_teacher_worse", equal(329)),
    Claim("students_lose_about_three_queries_in_four", NB03, "lose to the baseline on about three queries in four",
          "min(paired_mce_worse, paired_baseline_teacher_worse) / 436", about_fraction(0.75, rel=0.1)),
    Claim("sign_tests_below_1e_26", NB03, "sign tests p < 1e-26",
          "max(paired_mce_sign_p, paired_baseline_teacher_sign_p)", below(1e-26)),
    Claim("mce_student_delta_minus_0_151", NB03, "Their mAP differences, -0.151 and -0.149", "paired_mce_delta",
          rounds_to("-0.151")),
    Claim("baseline_student_delta_minus_0_149", NB03, "Their mAP differences, -0.151 and -0.149",
          "paired_baseline_teacher_delta", rounds_to("-0.149")),
    Claim("both_intervals_exclude_zero", NB03, "far from zero",
          "max(max(paired_mce_ci), max(paired_baseline_teacher_ci))", below(-0.1)),
    Claim("ablations_within_0_004", NB03, "The four ablations lie within 0.004 mAP of each other",
          "max(ablation_only_kd_mAP, ablation_no_instance_mAP, ablation_no_class_mAP, ablation_full_mAP) - "
          "min(ablation_only_kd_mAP, ablation_no_instance_mAP, ablation_no_class_mAP, ablation_full_mAP)",
          at_most(0.0045)),
    Claim("bn_switch_within_the_spread_on_validation", NB03, "validation rank-1 0.155 ± 0.024 against 0.156 ± 0.021",
          "abs(student_bn_per_modality_val_rank1 - student_full_short_val_rank1) - student_full_short_val_rank1_std",
          below(0)),
    Claim("bn_switch_val_rank1_0_155", NB03, "validation rank-1 0.155 ± 0.024", "student_bn_per_modality_val_rank1",
          rounds_to("0.155")),
    Claim("bn_reference_val_rank1_0_156", NB03, "against 0.156 ± 0.021", "student_full_short_val_rank1",
          rounds_to("0.156")),
    Claim("memory_switch_no_gain_on_validation", NB03, "validation rank-1 0.140 ± 0.026 against 0.153 ± 0.019",
          "teacher_memory_train_val_rank1 - teacher_val_rank1", below(0.0)),
    Claim("memory_switch_mAP_within_0_005", NB03, "mAP 0.214 against 0.213",
          "abs(teacher_memory_train_val_mAP - teacher_val_mAP)", at_most(0.005)),
    Claim("stored_published_teacher_is_this_teacher", NB03, "to the last digit (same code, one thread)",
          "abs(teacher_memory_study_published_val_rank1 - teacher_val_rank1) + "
          "abs(teacher_memory_study_published_val_mAP - teacher_val_mAP)", equal(0.0)),
]
NB04 = "04_icre"
CLAIMS_04 = [
    Claim("mpfr_lifts_0_233_to_0_256", NB04, "+MPFR lifts mAP from 0.233 to 0.256", "icre_mpfr_mAP", rounds_to("0.256")),
    Claim("grid_baseline_0_233", NB04, "+MPFR lifts mAP from 0.233", "icre_baseline_mAP", rounds_to("0.233")),
    Claim("mpfr_gain_about_three_spreads", NB04, "about three times the baseline row's spread",
          "(icre_mpfr_mAP - icre_baseline_mAP) / icre_baseline_mAP_std", about_fraction(3)),
    Claim("sdce_adds_nothing_measurable", NB04, "SDCE on top adds nothing measurable",
          "abs(icre_mpfr_sdce_mAP - icre_mpfr_mAP) - icre_mpfr_mAP_std", below(0)),
    Claim("icg_alone_within_the_spread", NB04, "ICG alone stays within the spread of the baseline row",
          "abs(icre_icg_mAP - icre_baseline_mAP) - icre_baseline_mAP_std", below(0)),
    Claim("full_sits_with_mpfr", NB04, "The full model (0.257) sits with +MPFR",
          "abs(icre_full_mAP - icre_mpfr_mAP) - icre_mpfr_mAP_std", below(0)),
    Claim("full_better_on_256", NB04, "better on 256 of 436 queries", "icre_queries_improved", equal(256)),
    Claim("full_worse_on_180", NB04, "worse on 180", "icre_queries_worse", equal(180)),
    Claim("sign_test_3e_4", NB04, "p = 3e-4", "icre_paired_sign_p", between(2.5e-4, 3.5e-4)),
    Claim("delta_0_024", NB04, "mAP difference +0.024", "icre_paired_delta", rounds_to("0.024")),
    Claim("interval_excludes_zero", NB04, "[+0.013, +0.036]", "min(icre_paired_ci)", rounds_to("0.013")),
    Claim("interval_top", NB04, "[+0.013, +0.036]", "max(icre_paired_ci)", rounds_to("0.036")),
    Claim("does_not_reach_the_agw_baseline", NB04, "It does not reach notebook 02's longer AGW baseline",
          "icre_full_mAP - agw_baseline_mAP", below(0)),
    Claim("agw_baseline_0_276", NB04, "(mAP 0.276 above)", "agw_baseline_mAP", rounds_to("0.276")),
]

# -- 05 · SD2-ReID ----------------------------------------------------------------------------------------------------
NB05 = "05_sd2reid"
# Retention under a corruption: mAP at the strongest level over mAP at level 0.
_KEEP = "sd2_{kind}_{who}_mAP_max_level / sd2_{kind}_{who}_mAP_level0"
KEEP = {(kind, who): _KEEP.format(kind=kind, who=who) for kind in ("style", "occlusion") for who in ("sd2", "baseline")}
_ROWS = ["sd2_ablation_" + row + "_mAP" for row in ("full", "no_hslm", "no_ddm", "random_mask", "separate_vits", "one_vit")]
CLAIMS_05 = [
    Claim("hmfe_shares_half_of_the_demo_vit", NB05, "shared depth $L_s$ = half the ViT's blocks ... 2 of the tiny demo ViT's 4",
          "[sd2_shared_depth, sd2_depth]", equal([2, 4])),
    Claim("demo_baseline_has_the_same_shared_depth", NB05, "which is also the demo baseline's",
          "sd2_baseline_shared_depth - sd2_shared_depth", equal(0)),
    Claim("semantic_distillation_starts_near_zero", NB05, "$L_{sem}$ starts near zero", "sd2_init_sem_kd", below(0.01)),
    Claim("training_loop_computes_the_same_terms", NB05,
          "The training loop computes the same terms (its own mask draw, so `intra` differs a little)",
          "sd2_loop_live_max_diff", at_most(1e-4)),
    # "moves by several percent between runs": the README measured 0.85-1.03 for this ratio under load
    Claim("no_extra_inference_cost", NB05, "No extra inference cost", "sd2_inference_ratio", at_least(0.85)),
    Claim("rgbnt_protocol_has_one_gallery", NB05, "The RGBNT201 protocol has one gallery", "sd2_paired_gallery_draws",
          equal(1)),
    Claim("random_mask_hides_about_30pct_of_attention", NB05, "a random 30% mask hides about 30% of it on average",
          "sd2_mask_random_hidden", rounds_to("0.3")),
    Claim("guided_mask_hides_more_attention", NB05, "the guided one hides more",
          "sd2_mask_attention_hidden - sd2_mask_random_hidden", above(0)),
    Claim("modality_probe_reads_1_on_every_code", NB05, "the modality probe reads 1.00 on every code",
          "min(sd2_semantic_modality_probe, sd2_style_modality_probe, sd2_baseline_cls_modality_probe)",
          rounds_to("1.00")),
    Claim("semantic_codes_lowest_modality_silhouette", NB05, "the semantic codes have the lowest modality silhouette",
          "sd2_semantic_modality_silhouette - min(sd2_style_modality_silhouette, sd2_baseline_cls_modality_silhouette)",
          below(0)),
    Claim("semantic_modality_silhouette_about_0_7", NB05, "(about 0.7", "sd2_semantic_modality_silhouette",
          rounds_to("0.7")),
    Claim("baseline_cls_modality_silhouette_about_0_9", NB05, "against about 0.9 for the baseline CLS",
          "sd2_baseline_cls_modality_silhouette", rounds_to("0.9")),
    Claim("style_modality_silhouette_about_0_9", NB05, "against about 0.9 for ... the style codes",
          "sd2_style_modality_silhouette", rounds_to("0.9")),
    Claim("semantic_codes_highest_cross_modal_purity", NB05, "the highest cross-modal kNN purity",
          "sd2_semantic_cross_modal_purity - max(sd2_style_cross_modal_purity, sd2_baseline_cls_cross_modal_purity)",
          above(0)),
    Claim("semantic_cross_modal_purity_about_0_13", NB05, "(about 0.13", "sd2_semantic_cross_modal_purity",
          rounds_to("0.13")),
    Claim("style_cross_modal_purity_0_03_to_0_04", NB05, "against 0.03 to 0.04", "sd2_style_cross_modal_purity",
          between(0.025, 0.045)),
    Claim("baseline_cls_cross_modal_purity_0_03_to_0_04", NB05, "against 0.03 to 0.04",
          "sd2_baseline_cls_cross_modal_purity", between(0.025, 0.045)),
    Claim("semantic_codes_best_identity_probe", NB05, "and the best identity probe",
          "sd2_semantic_identity_probe - max(sd2_style_identity_probe, sd2_baseline_cls_identity_probe)", above(0)),
    # "almost as well": within 0.1 of the semantic codes' held-out accuracy
    Claim("style_codes_carry_identity_almost_as_well", NB05, "the style codes carry identity almost as well",
          "sd2_semantic_identity_probe - sd2_style_identity_probe", at_most(0.1)),
    Claim("sd2_keeps_most_of_its_map_under_tir_shift", NB05, "Under the thermal style shift SD2-ReID keeps most of its mAP",
          KEEP["style", "sd2"], above(0.5)),
    Claim("baseline_loses_about_half_under_tir_shift", NB05,
          "the baseline loses about half of its mAP at full strength", f"1 - {KEEP['style', 'baseline']}",
          about_fraction(1 / 2)),
    Claim("sd2_keeps_more_than_the_baseline_under_tir_shift", NB05, "SD2-ReID keeps most ..., while the baseline loses",
          f"{KEEP['style', 'sd2']} - {KEEP['style', 'baseline']}", above(0)),
    # "collapse": less than half the mAP left at the strongest occlusion
    Claim("both_collapse_under_occlusion", NB05, "Under occlusion both models collapse together",
          f"max({KEEP['occlusion', 'sd2']}, {KEEP['occlusion', 'baseline']})", below(0.5)),
    # "together" / "did not buy occlusion robustness": retentions within 0.1 of each other
    Claim("masking_bought_no_occlusion_robustness", NB05,
          "collapse together ... Masking during training did not buy occlusion robustness",
          f"abs({KEEP['occlusion', 'sd2']} - {KEEP['occlusion', 'baseline']})", at_most(0.1)),
    Claim("sd2_above_baseline_at_every_occlusion_level", NB05, "SD2-ReID starts higher and stays a little above at "
          "every level", "sd2_occlusion_margin_min", above(0)),
    # "a little": a few points of mAP
    Claim("sd2_only_a_little_above_under_occlusion", NB05, "stays a little above", "sd2_occlusion_margin_max",
          at_most(0.05)),
    Claim("full_model_scores_highest", NB05, "The full model scores highest here",
          f"sd2_ablation_full_mAP - max({', '.join(r for r in _ROWS if r != 'sd2_ablation_full_mAP')})", above(0)),
    Claim("full_model_mAP_0_41", NB05, "(mAP 0.41)", "sd2_ablation_full_mAP", rounds_to("0.41")),
    Claim("removing_hslm_costs_the_most", NB05, "Removing HSLM costs the most",
          f"sd2_ablation_no_hslm_mAP - min({', '.join(r for r in _ROWS if r != 'sd2_ablation_no_hslm_mAP')})",
          below(0)),
    Claim("removing_hslm_costs_about_a_fifth", NB05, "about a fifth of the mAP",
          "1 - sd2_ablation_no_hslm_mAP / sd2_ablation_full_mAP", about_fraction(1 / 5)),
    Claim("no_hslm_0_33", NB05, "(0.33", "sd2_ablation_no_hslm_mAP", rounds_to("0.33")),
    Claim("no_ddm_0_35", NB05, "on the CLS features, 0.35", "sd2_ablation_no_ddm_mAP", rounds_to("0.35")),
    Claim("one_vit_0_35", NB05, "sharing every block (one ViT, 0.35)", "sd2_ablation_one_vit_mAP", rounds_to("0.35")),
    Claim("random_masks_0_37", NB05, "random masks of the same ratio and three separate ViTs sit in between (0.37 each)",
          "sd2_ablation_random_mask_mAP", rounds_to("0.37")),
    Claim("separate_vits_0_37", NB05, "sit in between (0.37 each)", "sd2_ablation_separate_vits_mAP", rounds_to("0.37")),
]

# -- 06 · failure analysis ---------------------------------------------------------------------------------------------
NB06 = "06_failure_analysis"
CLAIMS_06 = [
    Claim("deletion_blanks_10pct_of_pixels", NB06, "blank the 10% of pixels", "deletion_fraction", equal(0.1)),
]

# -- 07 · ablation dashboard -------------------------------------------------------------------------------------------
NB07 = "07_ablation_dashboard"
CLAIMS_07 = [
    Claim("sysu_protocol_has_ten_gallery_draws", NB07, "(SYSU-MM01: ten seeded draws)", "paired_gallery_draws",
          equal(10)),
    Claim("dakd_ablations_form_one_family_of_four", NB07, "notebook 03's four DAKD ablations form one",
          "family_size", equal(4)),
    # "many": at least half of the rows compared with run B have an interval that includes 0
    Claim("many_ablation_differences_within_noise", NB07,
          "many of the ablation differences of notebook 03 are within that noise",
          "family_pairs_within_noise / family_pairs", at_least(0.5)),
]

# -- 08 · vehicles -------------------------------------------------------------------------------------------------------
NB08 = "08_vehicles"
NIGHT = {m: f"veh_night_{m}_mAP_levels" for m in ("baseline", "sd2")}  # mAP at NIGHT_LEVELS 0, 0.25, 0.5, 0.75, 1
STYLE = {m: f"veh_style_{m}_mAP_levels" for m in ("baseline", "sd2")}  # mAP at SHIFT_LEVELS 0, 0.5, 1
CLAIMS_08 = [
    Claim("vehicle_baseline_val_0_42", NB08, "it reaches rank-1 0.42", "veh_baseline_val_rank1", rounds_to("0.42")),
    Claim("vehicle_baseline_just_inside_the_band", NB08, "just inside the 0.40-0.80 band", "veh_baseline_val_rank1",
          between(0.40, 0.45)),
    Claim("vehicle_sd2_val_0_40_lower", NB08, "SD2-ReID reaches 0.40, a little lower", "veh_sd2_val_rank1",
          rounds_to("0.40")),
    Claim("vehicle_sd2_val_below_baseline", NB08, "a little lower", "veh_sd2_val_rank1 - veh_baseline_val_rank1",
          below(0)),
    Claim("vehicle_baseline_rank1_0_060", NB08, "rank-1 0.060 and mAP 0.112 for the baseline", "veh_baseline_rank1",
          rounds_to("0.060")),
    Claim("vehicle_baseline_map_0_112", NB08, "rank-1 0.060 and mAP 0.112 for the baseline", "veh_baseline_mAP",
          rounds_to("0.112")),
    Claim("vehicle_sd2_rank1_0_042", NB08, "0.042 and 0.128 for SD2-ReID", "veh_sd2_rank1", rounds_to("0.042")),
    Claim("vehicle_sd2_map_0_128", NB08, "0.042 and 0.128 for SD2-ReID", "veh_sd2_mAP", rounds_to("0.128")),
    Claim("vehicle_delta_0_016", NB08, "The mAP difference is +0.016", "veh_paired_delta", rounds_to("0.016")),
    Claim("vehicle_interval_low", NB08, "interval of [+0.003, +0.031]", "veh_paired_ci[0]", rounds_to("0.003")),
    Claim("vehicle_interval_high", NB08, "interval of [+0.003, +0.031]", "veh_paired_ci[1]", rounds_to("0.031")),
    Claim("sd2_better_on_85", NB08, "it is better on 85 of the 168 test queries", "veh_paired_better", equal(85)),
    Claim("vehicle_168_queries", NB08, "85 of the 168 test queries",
          "veh_day_queries + veh_dusk_queries + veh_night_queries", equal(168)),
    Claim("sd2_worse_on_83", NB08, "and worse on 83", "veh_paired_worse", equal(83)),
    Claim("vehicle_sign_test_p", NB08, "(sign test p = 0.94)", "veh_paired_sign_p", rounds_to("0.94")),
    Claim("vehicle_sd2_rank1_lower", NB08, "and its rank-1 is lower", "veh_sd2_rank1 - veh_baseline_rank1", below(0)),
    Claim("night_gain_is_largest", NB08, "The night queries carry the gain",
          "(veh_night_sd2_mAP - veh_night_baseline_mAP) - max(veh_day_sd2_mAP - veh_day_baseline_mAP, "
          "veh_dusk_sd2_mAP - veh_dusk_baseline_mAP)", above(0)),
    Claim("night_baseline_0_070", NB08, "the baseline keeps 0.070 of its 0.137 day mAP", "veh_night_baseline_mAP",
          rounds_to("0.070")),
    Claim("day_baseline_0_137", NB08, "the baseline keeps 0.070 of its 0.137 day mAP", "veh_day_baseline_mAP",
          rounds_to("0.137")),
    Claim("night_sd2_0_113", NB08, "0.113 of its 0.149", "veh_night_sd2_mAP", rounds_to("0.113")),
    Claim("day_sd2_0_149", NB08, "0.113 of its 0.149", "veh_day_sd2_mAP", rounds_to("0.149")),
    Claim("night_gain_0_043", NB08, "SD2-ReID's gain is +0.043 at night", "veh_night_sd2_mAP - veh_night_baseline_mAP",
          rounds_to("0.043")),
    Claim("night_interval_low", NB08, "(interval [+0.015, +0.076], 37 queries)", "veh_night_diff_ci[0]",
          rounds_to("0.015")),
    Claim("night_interval_high", NB08, "(interval [+0.015, +0.076], 37 queries)", "veh_night_diff_ci[1]",
          rounds_to("0.076")),
    Claim("night_group_37", NB08, "37 queries", "veh_night_queries", equal(37)),
    Claim("day_gain_0_012", NB08, "by day it is +0.012", "veh_day_sd2_mAP - veh_day_baseline_mAP", rounds_to("0.012")),
    Claim("dusk_gain_minus_0_006", NB08, "at dusk -0.006", "veh_dusk_sd2_mAP - veh_dusk_baseline_mAP",
          rounds_to("-0.006")),
    Claim("day_and_dusk_intervals_cross_zero", NB08, "both with intervals across zero",
          "max(veh_day_diff_ci[0], veh_dusk_diff_ci[0])", below(0)),
    Claim("day_and_dusk_intervals_cross_zero_high", NB08, "both with intervals across zero",
          "min(veh_day_diff_ci[1], veh_dusk_diff_ci[1])", above(0)),
    Claim("every_code_gives_the_modality_away", NB08, "A linear probe reads the modality from it perfectly",
          "min(veh_sd2_semantic_modality_probe, veh_sd2_style_modality_probe, veh_baseline_cls_modality_probe)",
          equal(1.0)),
    Claim("semantic_silhouette_0_39", NB08, "silhouette by modality 0.39 against 0.995 for the baseline",
          "veh_sd2_semantic_silhouette_modality", rounds_to("0.39")),
    Claim("baseline_silhouette_0_995", NB08, "silhouette by modality 0.39 against 0.995 for the baseline",
          "veh_baseline_cls_silhouette_modality", rounds_to("0.995")),
    Claim("semantic_purity_0_085", NB08, "kNN purity 0.085 against 0.023", "veh_sd2_semantic_cross_modal_purity",
          rounds_to("0.085")),
    Claim("baseline_purity_0_023", NB08, "kNN purity 0.085 against 0.023", "veh_baseline_cls_cross_modal_purity",
          rounds_to("0.023")),
    Claim("semantic_identity_probe_0_11", NB08, "(0.11 semantic, 0.06 baseline", "veh_sd2_semantic_identity_probe",
          rounds_to("0.11")),
    Claim("baseline_identity_probe_0_06", NB08, "(0.11 semantic, 0.06 baseline", "veh_baseline_cls_identity_probe",
          rounds_to("0.06")),
    Claim("sd2_ahead_at_night_strengths_to_0_75", NB08, "SD2-ReID is ahead at night strengths 0 to 0.75",
          "min(" + ", ".join(f"{NIGHT['sd2']}[{i}] - {NIGHT['baseline']}[{i}]" for i in range(4)) + ")",
          above(0)),
    Claim("full_night_sd2_0_046", NB08, "both fall to the same mAP (0.046 against 0.047)", f"{NIGHT['sd2']}[-1]",
          rounds_to("0.046")),
    Claim("full_night_baseline_0_047", NB08, "both fall to the same mAP (0.046 against 0.047)",
          f"{NIGHT['baseline']}[-1]", rounds_to("0.047")),
    Claim("about_twice_the_training_time", NB08, "It costs about twice the training time",
          "veh_sd2_train_s / veh_baseline_train_s", about_fraction(2.0)),
    Claim("tir_shift_sd2_keeps_0_032", NB08, "SD2-ReID keeps 0.032 of its 0.128 mAP", f"{STYLE['sd2']}[-1]",
          rounds_to("0.032")),
    Claim("tir_shift_baseline_keeps_0_034", NB08, "the baseline 0.034 of 0.112", f"{STYLE['baseline']}[-1]",
          rounds_to("0.034")),
    Claim("tir_shift_hurts_sd2_more", NB08, "A changed thermal sensor hurts it more",
          f"{STYLE['baseline']}[-1] / {STYLE['baseline']}[0] - {STYLE['sd2']}[-1] / {STYLE['sd2']}[0]", above(0)),
    Claim("half_tir_shift_sd2_below", NB08, "SD2-ReID is already below (0.044 against 0.058)",
          f"{STYLE['baseline']}[1] - {STYLE['sd2']}[1]", above(0)),
    Claim("half_tir_shift_sd2_0_044", NB08, "(0.044 against 0.058)", f"{STYLE['sd2']}[1]", rounds_to("0.044")),
    Claim("half_tir_shift_baseline_0_058", NB08, "(0.044 against 0.058)", f"{STYLE['baseline']}[1]",
          rounds_to("0.058")),
    Claim("msvr_captures_per_query_6_8", NB08, "A test query has 6.8 gallery captures of its vehicle on average",
          "msvr_same_vehicle_mean", rounds_to("6.8")),
    Claim("msvr_rule_removes_2_75", NB08, "rule removes 2.75 of them", "msvr_same_scene_removed_mean",
          rounds_to("2.75")),
    Claim("msvr_52_queries", NB08, "1 of the 52", "msvr_queries", equal(52)),
    Claim("msvr_baseline_first_for_1", NB08, "the baseline finds the right vehicle first for 1 of the 52",
          "msvr_baseline_rank1 * msvr_queries", rounds_to("1")),
    Claim("msvr_sd2_first_for_2", NB08, "SD2-ReID for 2", "msvr_sd2_rank1 * msvr_queries", rounds_to("2")),
    Claim("msvr_baseline_map_0_052", NB08, "(mAP 0.052 and 0.045)", "msvr_baseline_mAP", rounds_to("0.052")),
    Claim("msvr_sd2_map_0_045", NB08, "(mAP 0.052 and 0.045)", "msvr_sd2_mAP", rounds_to("0.045")),
    Claim("msvr_better_on_23", NB08, "SD2-ReID is better on 23 queries", "msvr_paired_better", equal(23)),
    Claim("msvr_worse_on_29", NB08, "worse on 29 (sign test p = 0.49)", "msvr_paired_worse", equal(29)),
    Claim("msvr_sign_test_0_49", NB08, "(sign test p = 0.49)", "msvr_paired_sign_p", rounds_to("0.49")),
    Claim("msvr_delta_minus_0_007", NB08, "the mAP difference is -0.007", "msvr_paired_delta", rounds_to("-0.007")),
    Claim("msvr_interval_low", NB08, "an interval of [-0.026, +0.010]", "msvr_paired_ci[0]", rounds_to("-0.026")),
    Claim("msvr_interval_high", NB08, "an interval of [-0.026, +0.010]", "msvr_paired_ci[1]", rounds_to("0.010")),
    Claim("camera_rule_baseline_0_088", NB08, "the baseline's mAP is 0.088 instead of 0.052",
          "msvr_camera_rule_baseline_mAP", rounds_to("0.088")),
    Claim("about_40_percent_from_same_scene", NB08, "about 40 % of its mAP from them",
          "1 - msvr_baseline_mAP / msvr_camera_rule_baseline_mAP", between(0.35, 0.45)),
    Claim("camera_rule_sd2_0_057", NB08, "Under the same-camera rule, SD2-ReID (0.057)", "msvr_camera_rule_sd2_mAP",
          rounds_to("0.057")),
    Claim("camera_rule_sd2_below_baseline", NB08, "Under the same-camera rule, SD2-ReID (0.057) is below the baseline",
          "msvr_camera_rule_sd2_mAP - msvr_camera_rule_baseline_mAP", below(0)),
]

CLAIMS = CLAIMS_01 + CLAIMS_02 + CLAIMS_03 + CLAIMS_04 + CLAIMS_05 + CLAIMS_06 + CLAIMS_07 + CLAIMS_08


def check_claim(claim: Claim, records_path: Path) -> None:
    """Skip when `records_path` holds no cpu-demo entry for the claim's notebook (saying why); fail, naming the
    claim and its numbers, when the statement does not hold."""
    entries, missing = load_claim_records(records_path)
    if missing:
        pytest.skip(missing)
    records, reason = claim_records(entries, claim.notebook, records_path)
    if records is None:
        pytest.skip(reason)
    failure = claim.failure(records)
    if failure:
        pytest.fail(failure, pytrace=False)


@pytest.mark.claims
@pytest.mark.parametrize("claim", CLAIMS, ids=[f"{c.notebook[:2]}-{c.name}" for c in CLAIMS])
def test_claim(claim):
    check_claim(claim, RECORDS)


# -- the machinery (default suite) -------------------------------------------------------------------------------------

def test_claims_are_named_once_and_quote_their_notebook():
    """Each claim id is unique, its notebook exists, and its quote (ellipses aside) is in that notebook's markdown."""
    import json

    assert len({(c.notebook, c.name) for c in CLAIMS}) == len(CLAIMS)
    stems = {nb.stem: nb for nb in list_notebooks()}
    for claim in CLAIMS:
        assert claim.notebook in stems, f"{claim.name}: no notebook {claim.notebook} in {NOTEBOOK_DIR}"
        cells = json.loads(stems[claim.notebook].read_text())["cells"]
        prose = " ".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        prose = re.sub(r"\s+", " ", prose)
        for part in re.split(r"\s*\.\.\.\s*", claim.quote.strip("()")):
            assert part.strip(" ,(") in prose, f"{claim.name}: {part!r} is not in {claim.notebook}'s markdown"


def test_every_claim_reads_names_its_notebook_records():
    """A claim reads only names its notebook's source can record (a typo or a dropped record fails here, not
    only on the cpu-demo run)."""
    stems = {nb.stem: nb for nb in list_notebooks()}
    patterns = {}
    for claim in CLAIMS:
        if claim.notebook not in patterns:
            patterns[claim.notebook] = recordable_names(stems[claim.notebook])
        for name in claim.names:
            assert any(re.fullmatch(p, name) for p in patterns[claim.notebook]), \
                f"{claim.name} reads {name!r}, which {claim.notebook} never records"


FAKE_TRUE = Claim("half_is_kept", "05_sd2reid", "keeps about half", "kept / start", about_fraction(1 / 2))
FAKE_FALSE = Claim("most_is_kept", "05_sd2reid", "keeps most of its mAP", "kept / start", above(0.5))


def _write(path: Path, smoke=False, profile="cpu-demo", records=None, threads=1) -> Path:
    write_records_file(path, {"05_sd2reid": {"smoke": smoke, "profile": profile, "threads": threads, "seconds": 9.0,
                                             "records": records or {"kept": 0.25, "start": 0.5}}})
    return path


def test_a_true_claim_passes_and_a_false_one_fails_by_name(tmp_path):
    path = _write(tmp_path / "records.json")
    check_claim(FAKE_TRUE, path)  # 0.25 / 0.5 = 0.5: about half
    with pytest.raises(pytest.fail.Exception) as failed:
        check_claim(FAKE_FALSE, path)  # 0.5 is not more than 0.5
    message = str(failed.value)
    assert "most_is_kept" in message and "keeps most of its mAP" in message
    assert "kept = 0.25" in message and "start = 0.5" in message and "> 0.5" in message


def test_a_claim_fails_by_name_when_its_notebook_did_not_record_a_name(tmp_path):
    path = _write(tmp_path / "records.json", records={"kept": 0.25})
    with pytest.raises(pytest.fail.Exception, match="half_is_kept.*recorded no start"):
        check_claim(FAKE_TRUE, path)


@pytest.mark.parametrize("smoke, profile, reason", [
    (True, "smoke", "ran with SMOKE=True"), (None, None, "does not say whether"),
    (False, "paper", "'paper' profile")])
def test_smoke_unknown_and_other_profile_entries_are_skipped(tmp_path, smoke, profile, reason):
    path = _write(tmp_path / "records.json", smoke=smoke, profile=profile)
    with pytest.raises(pytest.skip.Exception, match=reason):
        check_claim(FAKE_FALSE, path)


def test_records_from_another_thread_count_are_skipped_and_unknown_counts_checked(tmp_path):
    with pytest.raises(pytest.skip.Exception, match="ran on 2 threads.*OMP_NUM_THREADS=1"):
        check_claim(FAKE_FALSE, _write(tmp_path / "two.json", threads=2))
    with pytest.raises(pytest.fail.Exception, match="most_is_kept"):  # no thread count (an older runner): checked
        check_claim(FAKE_FALSE, _write(tmp_path / "unknown.json", threads=None))
    check_claim(FAKE_TRUE, _write(tmp_path / "one.json", threads=1))


def test_a_missing_file_or_notebook_entry_is_skipped(tmp_path):
    with pytest.raises(pytest.skip.Exception, match="make demo"):
        check_claim(FAKE_TRUE, tmp_path / "nothing.json")
    path = _write(tmp_path / "records.json")
    other = Claim("x", "07_ablation_dashboard", "q", "paired_queries", equal(25))
    with pytest.raises(pytest.skip.Exception, match="no entry for 07_ablation_dashboard.*--only 07"):
        check_claim(other, path)


def test_the_claim_tier_reports_each_statement_by_name(pytester, tmp_path):
    """Run as pytest runs it: one fake records file, one claim true and one false -> one passed, one failed, and
    the failure's line names the statement."""
    path = _write(tmp_path / "records.json")
    pytester.makepyfile(f"""
        import pytest
        from pathlib import Path
        from workbench.claims import Claim, about_fraction, above
        from test_claims import check_claim
        CLAIMS = [Claim("half_is_kept", "05_sd2reid", "q", "kept / start", about_fraction(0.5)),
                  Claim("most_is_kept", "05_sd2reid", "keeps most", "kept / start", above(0.5))]
        @pytest.mark.parametrize("claim", CLAIMS, ids=[c.name for c in CLAIMS])
        def test_claim(claim):
            check_claim(claim, Path({str(path)!r}))
    """)
    pytester.syspathinsert(Path(__file__).parent)  # `test_claims` is this module, already imported
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rf")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED *test_claim?most_is_kept?*"])
    assert 'the prose says "keeps most"' in result.stdout.str()


def test_bounds_follow_the_wording():
    assert rounds_to("0.13") == between(0.125, 0.135) and rounds_to("0.6") == between(0.55, 0.65)
    assert about_fraction(0.5).low == pytest.approx(0.4) and about_fraction(0.5).high == pytest.approx(0.6)
    assert below(0.5).holds(0.49) and not below(0.5).holds(0.5) and at_most(0.5).holds(0.5)
    assert not above(0).holds(float("nan")) and not at_least(0).holds(True)  # a flag is not a number
    assert equal([1, 2]).holds([1, 2]) and not equal([1, 2]).holds([2, 1])
    with pytest.raises(ValueError, match="calls open"):
        Claim("bad", NB05, "q", "open('x')", equal(0))
    with pytest.raises(ValueError, match="uses Attribute"):
        Claim("bad", NB05, "q", "x.__class__", equal(0))
    last = Claim("last_level", NB05, "q", "levels[-1] / levels[0]", equal(0.25))  # a recorded curve, by position
    assert last.names == ["levels"] and last.evaluate({"levels": [0.4, 0.2, 0.1]}) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="uses Slice"):
        Claim("bad", NB05, "q", "levels[1:]", equal(0))
