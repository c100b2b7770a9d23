"""The built-in text for `edge-sdk eval` perplexity: a Python constant, so a device install has it.

Written for this project (not taken from a corpus): plain English prose on several topics, a short
dialogue, a little Python and JSON, and a few sentences in other languages, about 5 KB. It is meant
to compare an export against its reference (same tokenizer, same text), not to rank models.
"""

EVAL_TEXT = """\
The harbour was quiet in the early morning. Fishing boats rocked against the wooden pier, their ropes \
creaking as the tide turned, and a few gulls circled above the market stalls that were not yet open. \
An old man sat on an upturned crate, mending a net with quick, practised movements. He had done this \
every day for forty years, and he said the sea had taught him patience more than any person ever had.

When water freezes, its molecules arrange themselves into a hexagonal lattice that takes up more space \
than the liquid. This is why ice floats, and why lakes freeze from the top down rather than from the \
bottom up. The layer of ice on the surface insulates the water beneath it, so fish and plants can survive \
the winter in the dark, cold water below. Few substances behave this way; most solids are denser than \
their liquids.

A good recipe for bread needs only four ingredients: flour, water, salt and yeast. Mix three cups of \
flour with a teaspoon of salt, dissolve a packet of yeast in warm water, and combine everything into a \
soft dough. Knead it for about ten minutes, until it feels smooth and springs back when pressed. Let it \
rise in a warm place for an hour, shape it into a loaf, and bake it at 220 degrees Celsius for thirty \
minutes. The crust should sound hollow when you tap the bottom.

In 1869 the first transcontinental railroad in the United States was completed, linking the eastern \
network to the Pacific coast. A journey that had taken months by wagon could now be made in about a \
week. Towns grew up along the line, trade expanded, and the landscape of the West changed quickly, \
often at great cost to the people who already lived there.

"Did you remember to charge the phone?" she asked.
"I plugged it in last night, but the cable was loose," he said. "It's at twelve percent."
"Then we should turn off the screen and use the paper map until we find a café."
"Fine. But if we get lost, I am blaming the cable."

Small language models can run on a phone if they are compressed carefully. Weights stored with four \
bits instead of thirty-two take an eighth of the memory, and the processor spends less time waiting \
for data to arrive from RAM. The price is a small loss of accuracy, which is why every compressed model \
should be measured against the original: the same prompts, the same text, and a clear number for the \
difference.

def moving_average(values, window):
    \"\"\"Average of each run of `window` consecutive values.\"\"\"
    if window < 1:
        raise ValueError("window must be at least 1")
    total = sum(values[:window])
    averages = [total / window]
    for i in range(window, len(values)):
        total += values[i] - values[i - window]
        averages.append(total / window)
    return averages


print(moving_average([3, 5, 7, 9, 11], 2))  # [4.0, 6.0, 8.0, 10.0]

{"name": "sensor-7", "location": {"lat": 48.85, "lon": 2.35}, "readings": [21.5, 21.7, 22.0], "ok": true}

Photosynthesis turns light into chemical energy. Inside the leaves, chlorophyll absorbs mostly red and \
blue light and reflects green, which is why most plants look green to us. The energy splits water \
molecules, releasing oxygen, and is stored in sugars built from carbon dioxide taken from the air. \
Nearly all the food on Earth depends, directly or indirectly, on this process.

The committee met on Tuesday to discuss the budget for the next year. Three proposals were presented: \
repairing the library roof, extending the bus service to the new housing estate, and planting trees \
along the main road. After a long debate, the members agreed to fund the roof first, since rain had \
already damaged several shelves of books, and to return to the other two proposals in the spring.

Le marché ouvre à huit heures, et les premiers clients arrivent souvent avant que les légumes soient \
tous disposés sur les tables.
Der Zug nach Berlin hatte zwanzig Minuten Verspätung, aber niemand auf dem Bahnsteig schien überrascht.
El río crece cada primavera cuando la nieve de las montañas empieza a derretirse.
Il gatto dormiva al sole sul davanzale, indifferente al rumore della strada.

To solve 3x + 7 = 22, subtract 7 from both sides to get 3x = 15, then divide by 3: x = 5. Checking the \
answer is always worth the few seconds it takes: 3 times 5 is 15, and 15 plus 7 is 22.

At the end of the day the market closed, the boats came back with their catch, and the old man folded \
his net and carried it home. Tomorrow, he said, the weather would turn, and the sea would be rough again.
"""
