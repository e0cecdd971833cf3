"""Pure gaze and text maths: screen to image, fixations, heatmaps, sentences, the live pipeline."""
