"""A fixed set of questions and passages on everyday topics, unrelated to one another except in pairs:
what an embedder's cosine between a question and a passage that does *not* answer it looks like.

Cosines mean different things for different embedders (all-MiniLM-L6-v2 puts unrelated texts near 0.05,
e5-style models near 0.75), so a threshold on the raw cosine would be tied to one model. evidence.py
measures each embedder on these texts once and expresses a retrieval score in units of its spread over the
unrelated pairs (the off-diagonal ones). The topics avoid each other on purpose; none is about documents,
offices, machines or travel in a way that would favour one kind of user collection.
"""
from __future__ import annotations

# (question, a passage that answers it): the i-th question is unrelated to every passage but the i-th.
PAIRS: tuple[tuple[str, str], ...] = (
    ("How far is the Moon from the Earth?",
     "The Moon orbits the Earth at an average distance of about 384,400 kilometres. Its orbit is slightly "
     "elliptical, so the distance changes by roughly 40,000 kilometres over a month."),
    ("When should tomato seedlings be planted outside?",
     "Tomato seedlings go outdoors once the danger of frost has passed and night temperatures stay above 10 "
     "degrees. Harden them off for a week first by leaving them outside for a few hours each day."),
    ("How many players are on a football team?",
     "A football team fields eleven players, one of whom is the goalkeeper. Up to five substitutions are "
     "allowed in most professional competitions."),
    ("What is the deadline for filing my income tax return?",
     "Paper tax returns must reach the tax office by the end of October; returns filed online are accepted "
     "until the end of January. Late returns are charged a fixed penalty."),
    ("How often should I have my teeth checked by a dentist?",
     "Most adults should see a dentist for a check-up every six to twelve months. People with gum disease "
     "may be asked to come every three months."),
    ("How do I reverse a list in Python?",
     "Call the list's reverse() method to reverse it in place, or use slicing with a step of -1 to get a "
     "reversed copy without changing the original."),
    ("What size needles do I need to knit a chunky scarf?",
     "Chunky yarn is usually knitted on needles of 6 to 8 millimetres. Thicker needles give a looser, "
     "softer fabric that drapes well for a scarf."),
    ("Why do volcanoes erupt?",
     "Volcanoes erupt when molten rock, which is lighter than the solid rock around it, rises and gas "
     "pressure builds up inside the magma chamber until it breaks through the crust."),
    ("What should I do if my bank card is stolen?",
     "Call your bank straight away to block a stolen card; most banks have a 24-hour line. Then check your "
     "recent transactions and report any payments you did not make."),
    ("How much paracetamol can an adult take in a day?",
     "Adults can take one or two 500 mg tablets of paracetamol up to four times in 24 hours, leaving at least "
     "four hours between doses, and no more than eight tablets a day."),
    ("How long should I rest a steak after cooking it?",
     "Rest a steak for about five minutes, or half its cooking time, on a warm plate. The juices settle back "
     "into the meat instead of running out when you cut it."),
    ("What pressure should my car tyres be?",
     "The recommended tyre pressure is printed on a sticker inside the driver's door or in the fuel filler "
     "flap, usually between 2.2 and 2.5 bar for a family car."),
    ("How does the knight move in chess?",
     "The knight moves in an L shape: two squares in one direction and then one square at a right angle. It "
     "is the only piece that can jump over other pieces."),
    ("Can pizza boxes go in the recycling bin?",
     "Clean parts of a pizza box can be recycled with cardboard, but pieces soaked in grease or covered in "
     "cheese should go in the general waste because oil spoils the paper pulp."),
    ("How many keys does a standard piano have?",
     "A standard modern piano has 88 keys: 52 white keys and 36 black keys, covering a little more than seven "
     "octaves."),
    ("What causes a rainbow?",
     "A rainbow appears when sunlight is refracted, reflected and dispersed inside raindrops, splitting white "
     "light into its colours. It is seen with the sun behind the observer."),
    ("Does home insurance cover water damage from a burst pipe?",
     "Most home insurance policies cover sudden water damage from a burst pipe, but not damage that built up "
     "slowly from a leak that was left unrepaired."),
    ("How do I teach my dog to sit?",
     "Hold a treat above your dog's nose and move it slowly backwards; as its head follows, its bottom will "
     "lower. Say 'sit' and reward it the moment it sits."),
    ("What is the boiling point of water at sea level?",
     "At sea level, under standard atmospheric pressure, pure water boils at 100 degrees Celsius, or 212 "
     "degrees Fahrenheit."),
    ("Who painted the Mona Lisa?",
     "The Mona Lisa was painted by Leonardo da Vinci in the early sixteenth century. It hangs in the Louvre "
     "museum in Paris behind protective glass."),
    ("How long does it take to walk ten kilometres?",
     "At an average walking pace of about five kilometres an hour, ten kilometres takes roughly two hours, "
     "more on hilly ground or with a heavy pack."),
    ("How do I get red wine out of a carpet?",
     "Blot the red wine at once with a clean cloth, then dab the stain with cold water and a little washing-up "
     "liquid. Do not rub it, which spreads the stain into the fibres."),
    ("What is the largest ocean on Earth?",
     "The Pacific is the largest and deepest of the Earth's oceans, covering about a third of the planet's "
     "surface, more than all the land put together."),
    ("How many hours of sleep does a teenager need?",
     "Teenagers need about eight to ten hours of sleep a night. Many get less because their body clock shifts "
     "later during puberty while school still starts early."),
)
